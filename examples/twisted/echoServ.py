# The echo server of the reference documents (003), on Python 3: bytes, not str.
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol


class Echo(Protocol):
    """The protocol: one object per connection."""

    def __init__(self, factory):
        self.factory = factory

    def connectionMade(self):
        self.factory.numProtocols = self.factory.numProtocols + 1
        self.transport.write(b"Welcome! There are currently %d open connections.\n" %
                             (self.factory.numProtocols,))

    def connectionLost(self, reason):
        self.factory.numProtocols = self.factory.numProtocols - 1

    def dataReceived(self, data):
        self.transport.write(data)


class EchoFactory(Factory):
    numProtocols = 0

    def buildProtocol(self, addr):
        return Echo(self)


if __name__ == "__main__":
    reactor.listenTCP(8007, EchoFactory())
    reactor.run()
