"""The import graph has one direction (docs/architecture.md, "Layers").

    specs (spec, settings, healthspec, probes, errors, ...) <- core <- supervisor
    <- api <- frontends;   workers never import supervisor;   no cycles.

Read from the source with ast (imports inside functions count too), so a
lazy import cannot hide an upward edge.
"""

import ast
import functools
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2] / "corral"


def _module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def _read():
    """The graph, read in a fresh interpreter: CPython 3.11's ast.parse can fail
    with "AST constructor recursion depth mismatch" after other tests hit a
    RecursionError in this process."""
    out = subprocess.run([sys.executable, __file__], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def imports():
    return {module: set(targets) for module, targets in _read()["graph"].items()}


def _stdlib_imports():
    return _read()["core_stdlib"]


def _scan():
    """{module: {corral modules it imports}}."""
    graph = {}
    for path in ROOT.rglob("*.py"):
        name = _module_name(path)
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                base = node.module
                if node.level:  # relative: from the module's own package
                    package = name.rsplit(".", node.level)[0]
                    base = f"{package}.{base}"
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
        graph[name] = {f for f in found if f == "corral" or f.startswith("corral.")}
    return graph


def layer(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (ROOT / parts[1]).is_dir()) \
        else module


def offenders(prefix, forbidden):
    return sorted((module, target) for module, targets in imports().items()
                  if module.startswith(prefix) for target in targets
                  if any(target == f or target.startswith(f + ".") for f in forbidden))


def test_the_core_imports_no_shell_and_no_io():
    assert offenders("corral.core", ["corral.supervisor", "corral.frontends", "corral.api",
                                     "corral.workers", "corral.cli", "corral.config"]) == []
    for path, names in _stdlib_imports().items():
        assert not set(names) & {"asyncio", "subprocess", "socket", "selectors", "multiprocess",
                                 "time"}, path


def test_frontends_reach_the_master_only_through_the_api():
    assert offenders("corral.frontends", ["corral.supervisor", "corral.workers"]) == []


def test_the_worker_side_never_imports_the_master():
    neutral = ("corral.procsetup", "corral.libc", "corral.kinds", "corral.socketspec",
               "corral.privileges", "corral.spec", "corral.service", "corral.steps")
    assert offenders("corral.workers", ["corral.supervisor", "corral.api",
                                        "corral.frontends"]) == []
    for module in neutral:
        assert offenders(module, ["corral.supervisor"]) == [], module


def test_the_scan_sees_lazy_and_relative_imports():
    # The checks can fail: known edges of the real code are seen, among them
    # imports inside functions (serve.py's) and relative ones, if any.
    graph = imports()
    assert "corral.core.step" in graph["corral.supervisor.master"]
    assert "corral.api" in graph["corral.serve"]
    lazy = [m for m, t in graph.items() if "corral.serve" in t]  # cli imports it lazily
    assert lazy, "the CLI's lazy import of corral.serve was not seen"


def test_the_api_is_not_imported_by_what_it_serves():
    assert offenders("corral.supervisor", ["corral.api", "corral.frontends"]) == []
    assert offenders("corral.core", ["corral.api"]) == []


def test_the_spec_side_does_not_import_the_master():
    for module in ("corral.spec", "corral.healthspec", "corral.probes", "corral.errors",
                   "corral.privileges", "corral.readyspec", "corral.socketspec", "corral.sizes",
                   "corral.logspec", "corral.settings", "corral.loaders"):
        assert offenders(module, ["corral.supervisor", "corral.api", "corral.frontends"]) == []


def test_no_cycle_between_modules():
    graph = imports()
    modules = set(graph)
    edges = {m: {t for t in targets if t in modules and t != m} for m, targets in graph.items()}
    # a package's __init__ importing its own submodules is not a cycle
    for m, targets in edges.items():
        edges[m] = {t for t in targets if not t.startswith(m + ".")}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in edges[node]:
            if state.get(target) == "open":
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)


def _core_stdlib():
    found = {}
    for path in (ROOT / "core").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for n in node.names}
        names |= {node.module for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.module}
        found[str(path)] = sorted(names)
    return found


if __name__ == "__main__":
    print(json.dumps({"graph": {m: sorted(t) for m, t in _scan().items()},
                      "core_stdlib": _core_stdlib()}))
