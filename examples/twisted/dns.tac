# The DNS example of the reference documents (001): one MultiService with a
# TCP and a UDP server, answering from a hosts file. On a high port:
#    corral run dns.tac      then      dig @127.0.0.1 -p 10053 corral.example
import os

from twisted.application import internet, service
from twisted.names import dns, hosts, server

port = int(os.environ.get("DNS_PORT", 10053))
here = os.path.dirname(os.path.abspath(__file__))

# Create a MultiService, and hook up a TCPServer and a UDPServer to it as
# children.
dnsService = service.MultiService()
hostsResolver = hosts.Resolver(os.path.join(here, "hosts"))
tcpFactory = server.DNSServerFactory([hostsResolver])
internet.TCPServer(port, tcpFactory).setServiceParent(dnsService)
udpFactory = dns.DNSDatagramProtocol(tcpFactory)
internet.UDPServer(port, udpFactory).setServiceParent(dnsService)

# Create an application as normal
application = service.Application("DNSExample")

# Connect our MultiService to the application, just like a normal service.
dnsService.setServiceParent(application)
