"""The worker side never imports the master side (issue 11, item 8).

A forked worker runs with the master's modules already imported, so a
mistake would not fail there: these tests read the imports. Static: every
`import` statement under corral/workers (at top level or inside a function).
Dynamic: importing the worker's modules in a fresh interpreter loads no
corral.supervisor module (what they import imports nothing of it either).
"""

import ast
import pathlib
import subprocess
import sys

import corral

PACKAGE = pathlib.Path(corral.__file__).parent
WORKER_SIDE = sorted((PACKAGE / "workers").rglob("*.py"))
# Neutral modules both sides use: they must not import the master side either.
NEUTRAL = [PACKAGE / name for name in ("procsetup.py", "libc.py", "kinds.py", "socketspec.py",
                                       "privileges.py", "spec.py", "service.py")]


def imported_names(path, root=PACKAGE.parent):
    """Every module name an import statement in path names (relative ones resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def test_the_scan_sees_an_import_of_the_master_side(tmp_path):
    # The check can fail: a file with a lazy import of the master side is caught.
    (tmp_path / "corral" / "workers").mkdir(parents=True)
    bad = tmp_path / "corral" / "workers" / "bad.py"
    bad.write_text("def f():\n    from corral.supervisor import spawn\n"
                   "from ..supervisor.sockets import x\n")
    names = set(imported_names(bad, tmp_path))
    assert {"corral.supervisor", "corral.supervisor.sockets"} <= names


def test_no_worker_module_imports_corral_supervisor():
    assert len(WORKER_SIDE) >= 4  # bootstrap, runtimes
    bad = {str(path.relative_to(PACKAGE)): name
           for path in WORKER_SIDE + NEUTRAL for name in imported_names(path)
           if name == "corral.supervisor" or name.startswith("corral.supervisor.")}
    assert bad == {}


def test_importing_the_worker_side_loads_nothing_of_the_master_side():
    modules = [f"corral.{'.'.join(p.relative_to(PACKAGE).with_suffix('').parts)}"
               for p in WORKER_SIDE if p.name != "__init__.py"]
    code = (f"import sys\nfor m in {modules!r}:\n    __import__(m)\n"
            "print(sorted(m for m in sys.modules if m.startswith('corral.supervisor')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    assert out.strip() == "[]"
