"""/metrics: the master's facts in Prometheus' text exposition format (0.0.4).

Everything comes from api.Operations in one pass: the instances' briefs
(report.Brief, not whole status rows), one cached usage sample (the master's report.UsageCache, shared with `status`
and max_memory), the counters.
No pid is a label (a restart would make a new series); instances and
services are. The state is one 0/1 series per state per instance, in the
style of node_systemd_unit_state, so `corral_instance_state{state="FATAL"}
== 1` is an alert rule. The master's own process metrics use the standard
process_* names that client libraries export.
"""

import platform

from corral import __version__
from corral.api import RESTART_REASONS
from corral.core.states import State

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = [s.value for s in State]


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs):
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


class _Family:
    """One metric's HELP, TYPE and samples, kept together in the output."""

    def __init__(self, out, name, kind, text):
        # a counter is named with _total in TYPE too, as prometheus_client writes it
        self.name = name = name + "_total" if kind == "counter" else name
        self.lines = [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        out.append(self)

    def add(self, value, *pairs):
        self.put(_labels(pairs) if pairs else "", value)

    def put(self, labels, value):
        """labels: already rendered ("{...}"), for the per-instance series."""
        self.lines.append(f"{self.name}{labels} {_number(value)}")


def _number(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class Exposition:
    """Renders /metrics for one listener, keeping text between scrapes.

    Most of a scrape is the same as the last one: an instance's state
    series, start time, exit code and restart counters change only when it
    moves or restarts. So the text of those four families is kept whole
    while the table of report.Brief and the restart counts are equal to the
    last scrape's, and per instance (keyed by what it shows) otherwise. A
    scrape of 500 instances writes 8,500 series; formatting each of them
    again, from full status rows, was most of its cost.
    """

    def __init__(self):
        # (what, instance or service, what it shows) -> text
        self._blocks = {}
        self._moves = (None, None, "")  # (briefs, restart counts, their families' text)

    def _block(self, key, make):
        text = self._blocks.get(key)
        if text is None:
            text = self._blocks[key] = make()
        return text

    def _labels(self, name, service):
        """An instance's labels, escaped once and kept."""
        return self._block(("labels", name, service), lambda: (
            f'instance="{_escape(name)}",service="{_escape(service)}"'))

    def render(self, ops):
        """The whole exposition, as bytes."""
        briefs = tuple(ops.briefs())
        usage = ops.usage()
        restarts = ops.restarts_by_reason()
        # Three texts an instance: more means instances or their states came
        # and went since; start again rather than grow.
        if len(self._blocks) > 6 * len(briefs):
            self._blocks.clear()
        kept_briefs, kept_restarts, moves = self._moves
        if briefs != kept_briefs or restarts != kept_restarts:
            moves = self._moves_text(briefs, restarts)
            self._moves = (briefs, restarts, moves)
        out = []
        cpu = _Family(out, "corral_instance_cpu_seconds", "counter",
                      "CPU time of the instance's process tree (falls when a child exits).")
        rss = _Family(out, "corral_instance_memory_rss_bytes", "gauge",
                      "Resident memory of the instance's process tree.")
        for brief in briefs:
            tree = usage.get(brief.name)
            if tree is not None:
                labels = self._labels(brief.name, brief.service)
                cpu.lines.append(f"{cpu.name}{{{labels}}} {float(round(tree.cpu_seconds, 2))!r}")
                rss.lines.append(f"{rss.name}{{{labels}}} {int(tree.rss)}")
        counts = ops.log_counts()
        log_lines = _Family(out, "corral_service_log_lines", "counter",
                            "Log lines a service wrote (stdout, stderr and the master's lines about it).")
        size = _Family(out, "corral_service_log_bytes", "counter", "Bytes of those lines.")
        for service in sorted(counts):
            labels = self._block(("service", service), lambda: _labels([("service", service)]))
            count = counts[service]  # ints: formatted here, not through _number
            log_lines.lines.append(f"{log_lines.name}{labels} {count.lines}")
            size.lines.append(f"{size.name}{labels} {count.bytes}")
        _Family(out, "corral_log_lines_dropped", "counter",
                "Log lines skipped for followers that fell behind.").add(
            ops.log_lines_dropped())
        _Family(out, "corral_events_dropped", "counter",
                "Events skipped for followers that fell behind.").add(ops.events_dropped())
        master = ops.master_process()
        _Family(out, "process_cpu_seconds", "counter", "The master's CPU time.").add(
            round(master.cpu_seconds, 3))
        _Family(out, "process_resident_memory_bytes", "gauge", "The master's RSS.").add(master.rss)
        if master.start_time is not None:
            _Family(out, "process_start_time_seconds", "gauge",
                    "The master's start, in seconds since the epoch.").add(round(master.start_time, 2))
        _Family(out, "process_open_fds", "gauge", "The master's open file descriptors.").add(
            master.open_fds)
        _Family(out, "corral_build_info", "gauge", "corral's version; always 1.").add(
            1, ("version", __version__), ("python", platform.python_version()))
        rest = "\n".join(line for family in out for line in family.lines)
        return (moves + rest + "\n").encode("utf-8")

    def _moves_text(self, briefs, restarts):
        """The state, start time, exit code and restart families, ending in a newline."""
        block = self._block
        out = []
        state = _Family(out, "corral_instance_state", "gauge",
                        "1 for the state the instance is in, 0 for the others.")
        for brief in briefs:
            labels = self._labels(brief.name, brief.service)
            state.lines.append(block(("state", labels, brief.state), lambda: "\n".join(
                f'{state.name}{{{labels},state="{name}"}} {1 if brief.state == name else 0}'
                for name in STATES)))
        start = _Family(out, "corral_instance_start_time_seconds", "gauge",
                        "When the instance's current process was spawned, in seconds since the epoch.")
        exit_code = _Family(out, "corral_instance_last_exit_code", "gauge",
                            "The exit code of the instance's last process (absent after a signal).")
        for brief in briefs:
            labels = self._labels(brief.name, brief.service)
            if brief.started is not None:
                start.put("{" + labels + "}", brief.started)
            if brief.exit_code is not None:
                exit_code.put("{" + labels + "}", brief.exit_code)
        family = _Family(out, "corral_instance_restarts", "counter",
                         "Restarts since the master started, by reason: " + ", ".join(RESTART_REASONS) + ".")
        none = (0,) * len(RESTART_REASONS)
        counted = {}  # instance -> its counts in RESTART_REASONS' order, if any
        for (name, reason), count in restarts.items():
            counted.setdefault(name, list(none))[RESTART_REASONS.index(reason)] = count
        for brief in briefs:
            labels = self._labels(brief.name, brief.service)
            counts = tuple(counted[brief.name]) if brief.name in counted else none
            family.lines.append(block(("restarts", labels, counts), lambda: "\n".join(
                f'{family.name}{{{labels},reason="{reason}"}} {count}'
                for reason, count in zip(RESTART_REASONS, counts))))
        return "\n".join(line for f in out for line in f.lines) + "\n"
