"""Runtimes: what runs a service tree inside a worker, after the bootstrap.

    aio     corral's own tree on a fresh asyncio loop (the PythonTree kind)

The interface (two functions of a module) is in workers/bootstrap.py's
docstring; the kind of a service (supervisor/kinds.py) names its runtime.
"""
