"""corral: a process supervisor for one host, with Twisted's service tree.

The service classes are loaded on first use, so that the `corral` command
line client, which lives in this package too, starts without them.
"""

__version__ = "0.1.0"
__all__ = ["Application", "Command", "MultiService", "RestartGroup", "Service", "__version__"]

# Built-in services (corral.services.internet, .timer), with Twisted's names.
_INTERNET = ("TCPServer", "SSLServer", "UNIXServer", "UDPServer", "UNIXDatagramServer",
             "TCPClient", "SSLClient", "UNIXClient", "listening_sockets")


def __getattr__(name):
    if name in ("Application", "MultiService", "Service"):
        from corral import service

        return getattr(service, name)
    if name in _INTERNET:
        from corral.services import internet

        return getattr(internet, name)
    if name == "Command":
        from corral.command import Command

        return Command
    if name == "RestartGroup":
        from corral.restartgroup import RestartGroup

        return RestartGroup
    if name == "TimerService":
        from corral.services.timer import TimerService

        return TimerService
    raise AttributeError(f"module 'corral' has no attribute {name!r}")
