"""corral: a process supervisor for one host, with Twisted's service tree."""

from corral.service import Application, MultiService, Service

__version__ = "0.1.0"
__all__ = ["Application", "MultiService", "Service", "__version__"]
