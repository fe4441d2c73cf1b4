# The custom logging .tac of the reference documents (000): an ILogObserver
# on the application, writing to a log file rotated daily. Under corral the
# events also reach corral's own log (corral logs echo).
#    corral run logging.tac
import os

from twisted.application import internet, service
from twisted.application.service import Application
from twisted.logger import ILogObserver, textFileLogObserver
from twisted.python.logfile import DailyLogFile

from echoServ import EchoFactory

application = Application("myapp")
logfile = DailyLogFile("my.log", os.environ.get("MY_LOG_DIR", "/tmp"))
application.setComponent(ILogObserver, textFileLogObserver(logfile))

echo = internet.TCPServer(int(os.environ.get("ECHO_PORT", 8007)), EchoFactory())
echo.setName("echo")
echo.setServiceParent(application)
