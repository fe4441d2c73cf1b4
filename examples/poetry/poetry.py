"""The "fast poetry" server: `corral run examples/poetry/poetry.py`.

As in the twistd tutorial, a MultiService holds two services: a
PoetryService that loads the poem when it starts, and a listener that sends
the poem to every client and hangs up. The MultiService starts them in that
order, so the poem is loaded before the first client can connect, and stops
them in reverse. Try: `nc 127.0.0.1 10000`.
"""

import asyncio
import os

import corral

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


class PoetryListener(corral.Service):
    """Sends the poem of a PoetryService to each client (plain asyncio)."""

    def __init__(self, port, poetry_service, interface="127.0.0.1"):
        super().__init__()
        self.port = port
        self.interface = interface
        self.poetry_service = poetry_service
        self.server = None

    async def startService(self):
        super().startService()
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: PoetryProtocol(self.poetry_service), self.interface, self.port)
        print(f"serving poetry on {self.interface}:{self.port}")

    async def stopService(self):
        super().stopService()
        self.server.close()
        await self.server.wait_closed()


top = corral.MultiService()
top.setName("fastpoetry")
poetry = PoetryService(POEM)
poetry.setName("poem")
poetry.setServiceParent(top)
listener = PoetryListener(PORT, poetry)
listener.setName("listener")
listener.setServiceParent(top)

application = corral.Application("fastpoetry")
top.setServiceParent(application)
