"""Turn the master's results into text for people (and JSON lines for tools).

Pure functions from results to strings, plus the colour decision; the only
imports are json, os and time so that the CLI starts fast.
"""

import json
import os
import time

_RESET = "\033[0m"
_COLOURS = {
    "RUNNING": "\033[32m",  # green
    "STARTING": "\033[33m",  # yellow
    "STOPPING": "\033[33m",
    "BACKOFF": "\033[33m",
    "FATAL": "\033[31m",  # red
    "EXITED": "\033[2m",  # dim
    "STOPPED": "\033[2m",
}

STATUS_COLUMNS = ("NAME", "STATE", "PID", "UPTIME", "RESTARTS", "CPU", "RSS", "DESCRIPTION")


def use_colour(stream):
    """ANSI colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def state(name, colour=False):
    text = "-" if name is None else str(name)
    code = _COLOURS.get(text) if colour else None
    return f"{code}{text}{_RESET}" if code else text


def dropped(count):
    return f"[corral: {count} lines dropped: this client fell behind]"


def to_json(value):
    return json.dumps(value, indent=2, ensure_ascii=False)


def json_line(value):
    return json.dumps(value, ensure_ascii=False)


# -- status ---------------------------------------------------------------


def duration(seconds):
    """3d 4h, 2h 03m, 1m 05s, 12.3s; "-" for unknown."""
    if seconds is None:
        return "-"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        text = f"{seconds:.1f}"
        return ("59.9" if text == "60.0" else text) + "s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def size(nbytes):
    """Bytes in binary units: 512B, 4.0K, 12.3M, 1.5G; "-" for unknown."""
    if nbytes is None:
        return "-"
    value = float(nbytes)
    if value < 1024:
        return f"{int(value)}B"
    for unit in "KMGTP":
        value /= 1024
        if value < 1024 or unit == "P":
            return f"{value:.1f}{unit}"
    return "-"  # not reached


def percent(value):
    return "-" if value is None else f"{float(value):.1f}%"


def status_row(item):
    description = item.get("description") or ""
    if not description and item.get("last_exit") and item.get("state") != "RUNNING":
        description = f"last exit: {item['last_exit']}"
    pid = item.get("pid")
    return [
        str(item.get("name", "?")),
        str(item.get("state") or "-"),
        "-" if pid is None else str(pid),
        duration(item.get("uptime")),
        str(item.get("restarts", 0)),
        percent(item.get("cpu_percent")),
        size(item.get("rss")),
        description,
    ]


def status_table(items, colour=False):
    rows = [list(STATUS_COLUMNS)] + [status_row(item) for item in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(STATUS_COLUMNS) - 1)]
    right = {2, 4, 5, 6}  # numbers are right-aligned: PID RESTARTS CPU RSS
    lines = []
    for index, row in enumerate(rows):
        cells = []
        for i, width in enumerate(widths):
            text = row[i]
            padded = text.rjust(width) if i in right else text.ljust(width)
            if i == 1 and index > 0:
                padded = state(text, colour) + " " * (width - len(text))
            cells.append(padded)
        cells.append(row[-1])
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# -- actions (start, stop, restart, signal) -------------------------------


def action_line(item, colour=False):
    text = f"{item.get('name', '?')}: {state(item.get('state'), colour)}"
    if item.get("message"):
        text += f": {item['message']}"
    return text


# -- logs and events ------------------------------------------------------


def timestamp(unix_time):
    if unix_time is None:
        return "-"
    millis = int(round(float(unix_time) * 1000))
    seconds, millis = divmod(millis, 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) + f".{millis:03d}"


def log_line(item):
    """2026-11-23 17:55:27.123 web:0[4242] out: text"""
    who = str(item.get("name") or item.get("service") or "?")
    if item.get("pid") is not None:
        who += f"[{item['pid']}]"
    return f"{timestamp(item.get('time'))} {who} {item.get('stream', 'log')}: {item.get('line', '')}"


# -- tree -----------------------------------------------------------------


def _branches(unicode):
    if unicode:
        return ("\u251c\u2500 ", "\u2514\u2500 ", "\u2502  ", "   ")
    return ("|- ", "`- ", "|  ", "   ")


def tree(result, colour=False, unicode=True):
    """An indented tree: the app, its top-level services, instances, subtrees."""
    tee, elbow, pipe, blank = _branches(unicode)
    lines = [str(result.get("name") or "application")]

    def walk(nodes, prefix):
        for position, (label, children) in enumerate(nodes):
            last = position == len(nodes) - 1
            lines.append(prefix + (elbow if last else tee) + label)
            walk(children, prefix + (blank if last else pipe))

    def instance_label(inst):
        label = f"{inst.get('name', '?')}  {state(inst.get('state'), colour)}"
        if inst.get("pid") is not None:
            label += f"  pid {inst['pid']}"
        return label

    def service_node(node):
        label = str(node.get("name", "?"))
        if node.get("class"):
            label += f" ({node['class']})"
        return label, [service_node(child) for child in node.get("children") or ()]

    def top_node(node):
        kind = node.get("kind")
        label = str(node.get("name", "?"))
        if kind == "python" and node.get("class"):
            label += f" [python {node['class']}]"
        elif kind:
            label += f" [{kind}]"
        label += f"  {state(node.get('state'), colour)}"
        instances = node.get("instances") or []
        if len(instances) <= 1 and node.get("pid") is not None:
            label += f"  pid {node['pid']}"
        children = []
        if len(instances) > 1:
            children += [(instance_label(inst), []) for inst in instances]
        children += [service_node(child) for child in node.get("children") or ()]
        return label, children

    walk([top_node(node) for node in result.get("children") or ()], "")
    return "\n".join(lines)


# -- reload, version --------------------------------------------------------


def reload_summary(result):
    lines = []
    for key in ("added", "removed", "changed"):
        names = result.get(key) or []
        if names:
            lines.append(f"{key}: {', '.join(map(str, names))}")
    unchanged = len(result.get("unchanged") or [])
    if not lines:
        return f"no changes ({unchanged} unchanged)"
    lines.append(f"unchanged: {unchanged}")
    return "\n".join(lines)


def version_line(result, client_version):
    master_version = result.get("version") or "?"
    text = f"corral {master_version} (master pid {result.get('pid', '?')})"
    if master_version != client_version:
        text += f"; this client is {client_version}"
    return text
