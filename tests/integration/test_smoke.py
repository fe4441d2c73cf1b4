import signal

import pytest

from tests.integration.harness import pid_alive, wait_until

PY = '''
import corral

class Hello(corral.Service):
    def startService(self):
        super().startService()
        print("hello started", flush=True)

application = corral.Application("demo")
Hello().supervise(restart="always").setServiceParent(application)
'''


@pytest.mark.timeout(30)
def test_python_worker_runs_and_stops(master):
    m = master(PY, suffix=".py")
    row = m.wait_state("hello", "RUNNING")
    m.wait_log(r"hello\[\d+\] +hello started")
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0
    assert not pid_alive(row["pid"])
    wait_until(lambda: "all services stopped" in m.log_text(), dump=m.output)
