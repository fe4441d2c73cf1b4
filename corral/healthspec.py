"""The `health` and `max_memory` settings: parsed, checked and frozen.

Pure: no I/O, no loop. settings.py wraps parse_health and parse_memory in
its one-check-per-key table, so a bad value is a ConfigError naming the
key; supervisor/health.py runs what these describe. http and tcp targets
are probes.py's (IP addresses or `localhost` only), as for `ready`.
"""

import math
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from corral import probes
from corral.sizes import format_bytes, parse_size  # noqa: F401 - health.py's format_bytes

DEFAULT_INTERVAL = 10.0  # s between the starts of two probes
DEFAULT_FAILURES = 3  # failed probes in a row that restart the service
MAX_DEFAULT_TIMEOUT = 5.0  # the default timeout is min(interval, this)
KINDS = ("http", "tcp", "exec")
KEYS = (*KINDS, "interval", "failures", "timeout")


@dataclass(frozen=True)
class Health:
    """One health check. kind: http | tcp | exec.

    http, tcp: target (a probes.Target); exec: argv (a tuple of strings).
    """

    kind: str
    interval: float = DEFAULT_INTERVAL
    failures: int = DEFAULT_FAILURES
    timeout: float = MAX_DEFAULT_TIMEOUT
    target: probes.Target = None
    argv: tuple = None

    def describe(self):
        """What is probed, for messages: "http http://127.0.0.1:8080/health"."""
        if self.kind == "exec":
            return "exec " + shlex.join(self.argv)
        return ("http " if self.kind == "http" else "") + self.target.describe()


def parse_health(value):
    """A Health from a table {http|tcp|exec = ..., interval, failures, timeout}.

    Raises ValueError with a message for people.
    """
    if not isinstance(value, Mapping):
        raise ValueError('must be a table, e.g. {http = "http://127.0.0.1:8080/health", '
                         f"interval = 5, failures = 3}}, not {value!r}")
    for key in value:
        if key not in KEYS:
            raise ValueError(f"unknown key {key!r} in health (known: {', '.join(KEYS)})")
    kinds = [kind for kind in KINDS if kind in value]
    if len(kinds) != 1:
        raise ValueError("needs exactly one of http, tcp, exec"
                         + (f" (has {', '.join(kinds)})" if kinds else ""))
    kind = kinds[0]
    interval = _positive(value, "interval", DEFAULT_INTERVAL)
    failures = value.get("failures", DEFAULT_FAILURES)
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
        raise ValueError(f"health failures must be an integer >= 1, not {failures!r}")
    timeout = _positive(value, "timeout", min(interval, MAX_DEFAULT_TIMEOUT))
    common = dict(kind=kind, interval=interval, failures=failures, timeout=timeout)
    if kind == "exec":
        return Health(**common, argv=_exec(value["exec"]))
    try:
        target = (probes.parse_http if kind == "http" else probes.parse_tcp)(value[kind])
    except ValueError as exc:
        raise ValueError(f"health {exc}") from None
    return Health(**common, target=target)


def _positive(table, key, default):
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"health {key} must be a number of seconds > 0, not {value!r}")
    return float(value)


def _exec(value):
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"health exec: {exc}: {value!r}") from None
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        argv = list(value)
    else:
        raise ValueError('health exec must be a list of strings or a command string, '
                         f"not {value!r}")
    if not argv or not argv[0] or any("\0" in arg for arg in argv):
        raise ValueError(f"health exec needs a program to run, not {value!r}")
    return tuple(argv)


# -- memory sizes -------------------------------------------------------------

def parse_memory(value):
    """Bytes (an int > 0) from an int or "512MB", "1.5G", "100K", "2GiB" (sizes.py)."""
    return parse_size(value, minimum=1)
