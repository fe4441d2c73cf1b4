"""The `ready` setting: parsed, checked and frozen (pure: no I/O, no loop).

settings.py checks the key with parse_ready; supervisor/readiness.py runs
what it describes. tcp and http targets are probes.py's, as for `health`.
"Stayed up N seconds" is a readiness rule too, ("seconds", N), but users
write it `start_seconds = N` (settings.py): the name supervisord's users
look for, and the one every command gets by default.
"""

from collections.abc import Mapping

from corral import probes

READY_FORMS = ('"notify", {tcp = PORT}, {tcp = "HOST:PORT"} or '
               '{http = "http://HOST:PORT/PATH"}')


def parse_ready(value):
    """("notify",), ("tcp", Target) or ("http", Target); ValueError."""
    if value == "notify":
        return ("notify",)
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, arg),) = value.items()
        if kind == "tcp":
            return ("tcp", probes.parse_tcp(arg))
        if kind == "http":
            return ("http", probes.parse_http(arg))
        if kind == "seconds":
            raise ValueError(f"{{seconds = {arg!r}}} is written start_seconds = {arg!r} "
                             "(supervisord's startsecs), beside ready, not in it")
    raise ValueError(f"must be {READY_FORMS}, not {value!r}")


def up_for(seconds):
    """The ready rule of start_seconds: None (RUNNING at spawn) for 0."""
    return ("seconds", float(seconds)) if seconds else None


def describe(ready):
    """How a ready setting reads in logs and status."""
    if ready is None or ready[0] == "notify":
        return "READY=1"
    if ready[0] in ("tcp", "http"):
        return ready[1].describe()
    return f"{ready[1]:g} s up"
