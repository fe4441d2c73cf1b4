"""The `ready` setting: parsed, checked and frozen (pure: no I/O, no loop).

settings.py checks the key with parse_ready; supervisor/readiness.py runs
what it describes. tcp and http targets are probes.py's, as for `health`.
"""

import math
from collections.abc import Mapping

from corral import probes

READY_FORMS = ('"notify", {tcp = PORT}, {tcp = "HOST:PORT"}, '
               '{http = "http://HOST:PORT/PATH"} or {seconds = N}')


def parse_ready(value):
    """("notify",), ("tcp", Target), ("http", Target) or ("seconds", n); ValueError."""
    if value == "notify":
        return ("notify",)
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, arg),) = value.items()
        if kind == "tcp":
            return ("tcp", probes.parse_tcp(arg))
        if kind == "http":
            return ("http", probes.parse_http(arg))
        if kind == "seconds":
            if isinstance(arg, bool) or not isinstance(arg, (int, float)) \
                    or not math.isfinite(arg) or arg <= 0:
                raise ValueError(f"seconds must be a number > 0, not {arg!r}")
            return ("seconds", float(arg))
    raise ValueError(f"must be {READY_FORMS}, not {value!r}")


def describe(ready):
    """How a ready setting reads in logs and status."""
    if ready is None or ready[0] == "notify":
        return "READY=1"
    if ready[0] in ("tcp", "http"):
        return ready[1].describe()
    return f"{ready[1]:g} s up"
