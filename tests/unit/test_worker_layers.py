"""The worker side never imports the master side (issue 11, item 8).

A forked worker runs with the master's modules already imported, so a
mistake would not fail there. Static (every import statement, also inside
functions): tests/unit/test_layers.py. Dynamic, here: importing the worker's
modules in a fresh interpreter loads no corral.supervisor module (what they
import imports nothing of it either).
"""

import pathlib
import subprocess
import sys

import corral

PACKAGE = pathlib.Path(corral.__file__).parent
WORKER_SIDE = sorted((PACKAGE / "workers").rglob("*.py"))


def test_importing_the_worker_side_loads_nothing_of_the_master_side():
    modules = [f"corral.{'.'.join(p.relative_to(PACKAGE).with_suffix('').parts)}"
               for p in WORKER_SIDE if p.name != "__init__.py"]
    code = (f"import sys\nfor m in {modules!r}:\n    __import__(m)\n"
            "print(sorted(m for m in sys.modules if m.startswith('corral.supervisor')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    assert out.strip() == "[]"
