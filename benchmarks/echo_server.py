"""A TCP echo server run as a command by supervisord and circus (and corral's
command benchmarks): the standalone equivalent of benchmarks/corral_echo.py.

    python echo_server.py --port 8000 [--host 127.0.0.1]   # binds its own socket
    python echo_server.py --fd 3                           # serves an inherited
                                                           # listening socket
                                                           # (circus [socket:])
"""

import argparse
import asyncio
import socket


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def serve(args):
    loop = asyncio.get_running_loop()
    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
        server = await loop.create_server(Echo, sock=sock)
    else:
        server = await loop.create_server(Echo, args.host, args.port, reuse_address=True)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--fd", type=int)
    args = parser.parse_args()
    if (args.port is None) == (args.fd is None):
        parser.error("give exactly one of --port and --fd")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
