"""Turn the master's results into text for people (and JSON lines for tools).

Pure functions from results to strings, plus the colour decision; the only
imports are light (json, os, re, time, zlib) so that the CLI starts fast.
"""

import json
import os
import re
import time
import zlib

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


_RIGHT = {2, 4, 5, 6}  # numbers are right-aligned: PID RESTARTS CPU RSS


def status_grid(items):
    """The status table as padded cells: the header row, then one per item.
    The last column (DESCRIPTION) is not padded. `status` and `top` lay it out."""
    rows = [list(STATUS_COLUMNS)] + [status_row(item) for item in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(STATUS_COLUMNS) - 1)]
    return [[text.rjust(widths[i]) if i in _RIGHT else text.ljust(widths[i]) for i, text in enumerate(row[:-1])]
            + [row[-1]] for row in rows]


def status_table(items, colour=False):
    lines = []
    for index, cells in enumerate(status_grid(items)):
        if index > 0 and colour:
            text = cells[1].rstrip()
            cells[1] = state(text, colour) + " " * (len(cells[1]) - len(text))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# -- status NAME: the detailed view ----------------------------------------


def _ago(since, now):
    if since is None:
        return "-"
    when = timestamp(since, date=not today(since, now))
    return f"{when} ({duration(now - float(since))} ago)"


def detail(item, colour=False, unicode=True, now=None):
    """One instance as `systemctl status` shows a unit: a headline, the facts
    as labelled lines, then its recent transitions and its last log lines."""
    now = time.time() if now is None else now
    name, current = str(item.get("name", "?")), item.get("state")
    dot = "\u25cf" if unicode else "*"
    what = " ".join(_quote(a) for a in item["command"]) if item.get("command") else item.get("class")
    head = f"{state_mark(dot, current, colour)} {name}"
    if what:
        head += f" - {item.get('kind') or '?'}: {what}"
    facts = [("Config", item.get("config") or "-"),
             ("State", f"{state(current, colour)} since {_ago(item.get('since'), now)}")]
    if item.get("description"):
        facts.append(("Reason", item["description"]))
    if item.get("pid") is not None:
        facts.append(("PID", f"{item['pid']}  up {duration(item.get('uptime'))}  "
                             f"CPU {percent(item.get('cpu_percent'))}  RSS {size(item.get('rss'))}"))
    restarts = f"{item.get('restarts', 0)}"
    if item.get("last_exit"):
        restarts += f"  last exit: {item['last_exit']}"
    facts.append(("Restarts", restarts))
    for label, key in (("After", "after"), ("Ordered after", "order_after"), ("Requires", "requires"),
                       ("Sockets", "sockets")):
        if item.get(key):
            facts.append((label, ", ".join(item[key])))
    if item.get("group"):
        facts.append(("Group", item["group"]))
    width = max(len(label) for label, _ in facts)
    lines = [head] + [f"  {label.rjust(width)}: {text}" for label, text in facts]
    moves = item.get("transitions") or []
    lines += ["", "Recent transitions:" if moves else "Recent transitions: none since the master started"]
    lines += ["  " + event_line(e, colour=colour, date=not today(e.get("time"), now)) for e in moves]
    log = item.get("log") or []
    lines += ["", f"Last {len(log)} log lines:" if log else "Log: no lines yet"]
    lines += ["  " + log_line(e, colour=colour, date=not today(e.get("time"), now)) for e in log]
    return "\n".join(lines)


def state_mark(mark, name, colour):
    """The headline's dot in the state's colour (plain without colour)."""
    code = _COLOURS.get(str(name)) if colour else None
    return f"{code}{mark}{_RESET}" if code else mark


def _quote(arg):
    """An argv item as a shell would need it, so the line can be pasted."""
    return arg if arg and _SAFE.fullmatch(arg) else "'" + arg.replace("'", "'\"'\"'") + "'"


_SAFE = re.compile(r"[\w@%+=:,./-]+")


# -- actions (start, stop, restart, signal) -------------------------------


def action_line(item, colour=False):
    text = f"{item.get('name', '?')}: {state(item.get('state'), colour)}"
    if item.get("message"):
        text += f": {item['message']}"
    return text


# -- logs and events ------------------------------------------------------


def timestamp(unix_time, date=True):
    """2026-11-23 17:55:27.123 (local time); 17:55:27.123 without the date."""
    if unix_time is None:
        return "-"
    millis = int(round(float(unix_time) * 1000))
    seconds, millis = divmod(millis, 1000)
    text = time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", time.localtime(seconds))
    return f"{text}.{millis:03d}"


def today(unix_time, now=None):
    """True if unix_time is on today's local date (then the date can be left out)."""
    if unix_time is None:
        return True
    now = time.time() if now is None else now
    return time.localtime(float(unix_time))[:3] == time.localtime(now)[:3]


# The foreground's colours for names (supervisor/logs.py's color_of; a test
# keeps the two equal, since the client may not import the master side).
NAME_COLOURS = (31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96)


def colour_of(name):
    return NAME_COLOURS[zlib.crc32(name.encode("utf-8", "replace")) % len(NAME_COLOURS)]


# Text that says it is a problem, wherever it came from: Python's logging
# writes INFO to stderr too, so stderr alone is no reason to alarm anyone.
_SEVERE = re.compile(r"\b(ERROR|CRITICAL|FATAL|Traceback|Exception|panic)\b")
_WARNING = re.compile(r"\b(WARNING|WARN)\b")


def who(item):
    return str(item.get("name") or item.get("service") or "?")


def log_line(item, width=0, colour=False, date=True):
    """17:55:27.123 web:0  text: the time, the name padded to width, the line.

    The stream and the pid are left out (shorter; --json has them); with
    colour the name has the foreground's colour and a line that says ERROR
    or Traceback is red, WARNING yellow, whichever stream it came on.
    """
    name, text = who(item), str(item.get("line", ""))
    pad = " " * max(0, width - len(name))
    if colour:
        name = f"\033[{colour_of(name)}m{name}{_RESET}"
        text = severity(text)
    return f"{timestamp(item.get('time'), date)} {name}{pad} {text}"


def severity(text):
    """A log line's text in red if it says ERROR or Traceback, yellow if WARNING."""
    if _SEVERE.search(text):
        return f"\033[31m{text}{_RESET}"
    if _WARNING.search(text):
        return f"\033[33m{text}{_RESET}"
    return text


def event_line(item, width=0, colour=False, date=True):
    """17:55:27.123 web:0  RUNNING -> BACKOFF  pid 4242  exit 1"""
    name = who(item)
    pad = " " * max(0, width - len(name))
    if colour:
        name = f"\033[{colour_of(name)}m{name}{_RESET}"
    text = f"{timestamp(item.get('time'), date)} {name}{pad} "
    text += f"{state(item.get('from'), colour)} -> {state(item.get('to'), colour)}"
    reason = item.get("reason") or ""
    if item.get("pid") is not None and f"pid {item['pid']}" not in reason:
        text += f"  pid {item['pid']}"
    # the reason says why in words (it names the exit when the exit was why);
    # the last exit alone is for items from before reasons were sent
    why = reason or item.get("exit")
    if why:
        text += f"  {why}"
    return text


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
        links = [f"after {', '.join(node['after'])}"] if node.get("after") else []
        if node.get("order_after"):  # supervisord's priority: an order, not a dependency
            links.append(f"ordered after {', '.join(node['order_after'])}")
        if node.get("requires"):
            links.append(f"requires {', '.join(node['requires'])}")
        if node.get("group"):
            links.append(f"group {node['group']}")
        if links:
            label += "  (" + "; ".join(links) + ")"
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
    for key in ("added", "removed", "changed", "scaled"):
        names = result.get(key) or []
        if names:
            lines.append(f"{key}: {', '.join(map(str, names))}")
    unchanged = len(result.get("unchanged") or [])
    kept = result.get("not_applied") or []
    note = [f"not applied, the master must be started again for: [corral] {', '.join(map(str, kept))}"] \
        if kept else []
    note += [f"not followed by reload in {name}: {'; '.join(map(str, what))}"
             for name, what in (result.get("unfollowed") or {}).items()]
    if not lines:
        return "\n".join([f"no changes ({unchanged} unchanged)"] + note)
    lines.append(f"unchanged: {unchanged}")
    return "\n".join(lines + note)


def version_line(result, client_version):
    master_version = result.get("version") or "?"
    text = f"corral {master_version} (master pid {result.get('pid', '?')})"
    if master_version != client_version:
        text += f"; this client is {client_version}"
    if result.get("containment"):
        text += f"\ncontainment: {result['containment']}"
    return text
