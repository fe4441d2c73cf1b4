"""A toy name server over TCP and UDP: `corral run examples/dns/dns.py`.

The twistd guide's DNS example, on corral: one MultiService holds a
TCPServer and a UDPServer on the same port number, both answering from one
resolver, so the pair starts, stops and restarts as one worker.

The query protocol is a made-up one, not real DNS: send a name, get back
one line "NAME A ADDRESS". Names in HOSTS get their address; any other
valid name gets a fake but stable one in 10.0.0.0/8. A bad name gets
"ERROR bad name". Over TCP send one name per line, as many as you like;
over UDP send one name per datagram.

Environment: DNS_PORT (default 10053); it listens on 127.0.0.1 only.

Query it over TCP:

    python -c "import socket; s = socket.create_connection(('127.0.0.1', 10053)); s.sendall(b'corral.example\\n'); print(s.recv(512).decode(), end='')"

and over UDP:

    python -c "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'example.org', ('127.0.0.1', 10053)); print(s.recv(512).decode(), end='')"
"""

import asyncio
import hashlib
import os
import re

import corral
from corral.services.internet import TCPServer, UDPServer

PORT = int(os.environ.get("DNS_PORT", "10053"))
INTERFACE = "127.0.0.1"
HOSTS = {"localhost": "127.0.0.1", "corral.example": "192.0.2.1", "twisted.example": "192.0.2.2"}
NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?)+$")
MAX_LINE = 512


class Resolver:
    """Answers one query (bytes) with one line (bytes); counts what it answered."""

    def __init__(self, hosts):
        self.hosts = dict(hosts)
        self.answered = 0

    def answer(self, query):
        name = query.strip().decode("ascii", "replace").rstrip(".").lower()
        if not NAME.match(name):
            return b"ERROR bad name\n"
        address = self.hosts.get(name)
        if address is None:
            digest = hashlib.sha256(name.encode()).digest()
            address = f"10.{digest[0]}.{digest[1]}.{digest[2]}"
        self.answered += 1
        return f"{name} A {address}\n".encode()


class DNSStreamProtocol(asyncio.Protocol):
    """TCP: one name per line, one answer line each."""

    def __init__(self, resolver):
        self.resolver = resolver
        self.buffer = b""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.transport.write(self.resolver.answer(line))
        if len(self.buffer) > MAX_LINE:
            self.transport.write(b"ERROR bad name\n")
            self.transport.close()


class DNSDatagramProtocol(asyncio.DatagramProtocol):
    """UDP: one name per datagram, one answer datagram each."""

    def __init__(self, resolver):
        self.resolver = resolver

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(self.resolver.answer(data[:MAX_LINE]), addr)


def make_service(port=PORT, interface=INTERFACE, hosts=HOSTS):
    """The DNS MultiService: a TCPServer and a UDPServer on one port number."""
    resolver = Resolver(hosts)
    dns_service = corral.MultiService()
    dns_service.setName("dns")
    dns_service.resolver = resolver
    tcp = TCPServer(port, lambda: DNSStreamProtocol(resolver), interface=interface)
    tcp.setName("tcp")
    tcp.setServiceParent(dns_service)
    udp = UDPServer(port, lambda: DNSDatagramProtocol(resolver), interface=interface)
    udp.setName("udp")
    udp.setServiceParent(dns_service)
    return dns_service


application = corral.Application("DNSExample")
make_service().setServiceParent(application)
