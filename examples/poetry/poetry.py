"""The "fast poetry" server: `corral run examples/poetry/poetry.py`.

As in the twistd tutorial, a MultiService holds two services: a
PoetryService that loads the poem when it starts, and a listener that sends
the poem to every client and hangs up. The MultiService starts them in that
order, so the poem is loaded before the first client can connect, and stops
them in reverse. The listener is corral's TCPServer, as twistd's is
internet.TCPServer. Try: `nc 127.0.0.1 10000`.
"""

import asyncio
import os

import corral
from corral.services.internet import TCPServer

PORT = int(os.environ.get("POETRY_PORT", "10000"))
POEM = os.environ.get("POETRY_FILE", os.path.join(os.path.dirname(__file__), "ecstasy.txt"))


class PoetryService(corral.Service):
    """Holds the poem; loads it from its file when it starts."""

    def __init__(self, poetry_file):
        super().__init__()
        self.poetry_file = poetry_file
        self.poem = None

    def startService(self):
        super().startService()
        with open(self.poetry_file, "rb") as f:
            self.poem = f.read()
        print(f"loaded a poem from: {self.poetry_file}")


class PoetryProtocol(asyncio.Protocol):
    def __init__(self, service):
        self.service = service

    def connection_made(self, transport):
        peer = transport.get_extra_info("peername")
        print(f"sending {len(self.service.poem)} bytes of poetry to {peer}")
        transport.write(self.service.poem)
        transport.close()


top = corral.MultiService()
top.setName("fastpoetry")
poetry = PoetryService(POEM)
poetry.setName("poem")
poetry.setServiceParent(top)
listener = TCPServer(PORT, lambda: PoetryProtocol(poetry), interface="127.0.0.1")
listener.setName("listener")
listener.setServiceParent(top)

application = corral.Application("fastpoetry")
top.setServiceParent(application)
