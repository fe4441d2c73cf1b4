# The reference documents' echo.tac (003), with the typo fixed
# (myservices -> myServices). Run: corral run echo.tac
import os

from twisted.application import internet, service

from echoServ import EchoFactory

application = service.Application("Echo service")

myServices = internet.TCPServer(int(os.environ.get("ECHO_PORT", 8007)), EchoFactory())

myServices.setServiceParent(application)
