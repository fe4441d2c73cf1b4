"""An echo server that takes its sockets by socket activation, as from systemd.

corral (or systemd) binds the sockets and starts this program with them on
fds 3, 4, ... and LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES in its environment
(sd_listen_fds(3)). It serves every one: stream sockets (TCP, unix) echo
each line back, datagram sockets (UDP) echo each datagram, and every reply
starts with the socket's name and this process's pid, so that you can see
which instance answered:

    $ corral run examples/activation/activation.toml
    $ printf 'hi\\n' | nc -q1 127.0.0.1 8025
    echo 12345: hi

Standard library only; it runs without corral too (systemd-socket-activate
-l 8025 python3 echo_activated.py).
"""

import asyncio
import os
import socket
import sys

SD_LISTEN_FDS_START = 3


def listen_fds():
    """[(socket, name)] passed to us; [] if none were (or they were for another pid)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []  # not for us: a parent's variables we inherited
    count = int(os.environ.get("LISTEN_FDS", "0"))
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    found = []
    for i in range(count):
        fd = SD_LISTEN_FDS_START + i
        os.set_inheritable(fd, False)  # ours, not our children's
        name = names[i] if i < len(names) and names[i] else f"fd{fd}"
        found.append((socket.socket(fileno=fd), name))
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    return found


class EchoLines(asyncio.Protocol):
    def __init__(self, name):
        self.prefix = f"{name} {os.getpid()}: ".encode()
        self.buffer = b""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.transport.write(self.prefix + line + b"\n")


class EchoDatagrams(asyncio.DatagramProtocol):
    def __init__(self, name):
        self.prefix = f"{name} {os.getpid()}: ".encode()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(self.prefix + data, addr)


async def main():
    sockets = listen_fds()
    if not sockets:
        sys.exit("no sockets passed (LISTEN_FDS / LISTEN_PID): run me under corral or systemd")
    loop = asyncio.get_running_loop()
    for sock, name in sockets:
        if sock.type == socket.SOCK_DGRAM:
            await loop.create_datagram_endpoint(lambda n=name: EchoDatagrams(n), sock=sock)
        else:
            await loop.create_server(lambda n=name: EchoLines(n), sock=sock)
        print(f"pid {os.getpid()} serving {name} on {sock.getsockname()!r}", flush=True)
    await asyncio.Event().wait()  # until SIGTERM


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
