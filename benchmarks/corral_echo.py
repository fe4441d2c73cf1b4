"""corral's echo server for the benchmarks: a Python tree with corral.TCPServer.

The master binds the listening socket (privilegedStartService in the master)
and holds it while workers come and go, so a connection made while the worker
is dead waits in the backlog instead of being refused. The port comes from
$BENCH_ECHO_PORT.

    BENCH_ECHO_PORT=8000 corral run benchmarks/corral_echo.py
"""

import asyncio
import os

import corral


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


application = corral.Application("bench-echo")
echo = corral.TCPServer(int(os.environ["BENCH_ECHO_PORT"]), Echo, interface="127.0.0.1")
echo.setName("echo")
echo.setServiceParent(application)
