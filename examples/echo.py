"""An echo server, tac-style: run it with `corral run examples/echo.py`.

Like Twisted's echo.tac, this file only builds the service tree and assigns
it to `application`; corral runs it in a worker process, restarts it if it
crashes, and stops it on Ctrl-C. Try: `nc 127.0.0.1 8007`.
"""

import asyncio
import os

import corral

PORT = int(os.environ.get("ECHO_PORT", "8007"))


class Echo(asyncio.Protocol):
    """Greets each client with the number of open connections, then echoes."""

    def __init__(self, factory):
        self.factory = factory

    def connection_made(self, transport):
        self.transport = transport
        self.factory.connections += 1
        transport.write(b"Welcome! There are currently %d open connections.\n"
                        % self.factory.connections)

    def connection_lost(self, exc):
        self.factory.connections -= 1

    def data_received(self, data):
        self.transport.write(data)


class EchoService(corral.Service):
    """Listens on 127.0.0.1:PORT while started."""

    def __init__(self, port):
        super().__init__()
        self.port = port
        self.connections = 0
        self.server = None

    async def startService(self):
        super().startService()
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: Echo(self), "127.0.0.1", self.port)
        print(f"echo server listening on 127.0.0.1:{self.port}")

    async def stopService(self):
        super().stopService()
        self.server.close()
        await self.server.wait_closed()
        print("echo server stopped")


application = corral.Application("echo")
echo = EchoService(PORT)
echo.setName("echo")
echo.setServiceParent(application)
