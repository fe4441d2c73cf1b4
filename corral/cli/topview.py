"""`corral top`'s view as pure functions: status rows and log lines in, the
lines of one frame out, and keys in, actions out. No terminal, no socket
(top.py does those), so every layout and every key is tested without a
process.

A frame is: a header, the status table (the columns of `corral status`,
render.status_grid, with a `>` before the selected row, so the selection
reads without colour), the title of the log pane, the selected instance's
last log lines, and a footer with the keys, the last action's answer or the
filter being typed. Every line is cut to the width (wide characters count
two) and nothing from a log line reaches the terminal as a control
character: a service's output cannot move the cursor or change colours.
"""

import time

from corral.cli import render

# The orders `o` cycles through. "config": as the master lists them.
SORTS = ("config", "name", "state", "cpu", "rss", "restarts")

# Problems first when sorted by state.
_STATE_RANK = {state: rank for rank, state in enumerate(
    ("FATAL", "BACKOFF", "FAILING", "EXITED", "STARTING", "STOPPING", "WAITING", "STOPPED", "RUNNING"))}

FOOTER = "r restart  s start  x stop  f follow  / filter  o sort  j/k move  q quit"

_REVERSE, _BOLD, _RESET = "\033[7m", "\033[1m", "\033[0m"


class View:
    """What the person chose: order, filter, selection, follow; and what to say."""

    def __init__(self, sort="config", filter="", follow=True):
        self.sort = sort
        self.filter = filter
        self.follow = follow
        self.selected = None  # an instance name
        self.typing = None  # the filter being typed, or None
        self.before_typing = ""
        self.message = ""
        self.offset = 0  # the first table row shown, when they do not all fit

    def rows(self, items):
        """The items shown, in order; keeps the selection on one of them."""
        shown = visible(items, self.sort, self.filter)
        names = [item.get("name") for item in shown]
        if self.selected not in names:
            self.selected = names[0] if names else None
        return shown

    def key(self, key, items):
        """Apply one key (from keys()); an action for top.py, or None.

        Actions: ("restart" | "start" | "stop", name), ("quit",)."""
        shown = self.rows(items)
        if self.typing is not None:
            return self._typing_key(key)
        names = [item.get("name") for item in shown]
        where = names.index(self.selected) if self.selected in names else 0
        moves = {"down": 1, "j": 1, "up": -1, "k": -1, "pgdn": 10, "pgup": -10,
                 "home": -len(names), "end": len(names)}
        if key in moves and names:
            self.selected = names[max(0, min(len(names) - 1, where + moves[key]))]
        elif key in ("q", "ctrl-c"):
            return ("quit",)
        elif key in ("r", "s", "x") and self.selected is not None:
            return ({"r": "restart", "s": "start", "x": "stop"}[key], self.selected)
        elif key == "f":
            self.follow = not self.follow
        elif key == "o":
            self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        elif key == "/":
            self.typing, self.before_typing = self.filter, self.filter
        elif key == "esc":
            self.filter = ""
        return None

    def _typing_key(self, key):
        """The filter applies as it is typed; Enter keeps it, Esc puts back the old one."""
        if key == "enter":
            self.typing = None
        elif key in ("esc", "ctrl-c"):
            self.filter, self.typing = self.before_typing, None
        elif key == "backspace":
            self.typing = self.typing[:-1]
        elif len(key) == 1 and key.isprintable():
            self.typing += key
        self.filter = self.typing if self.typing is not None else self.filter
        return None


def visible(items, sort="config", text=""):
    """The items that match the filter (in name, state or description, any
    case), in the order asked: cpu, rss and restarts highest first, state
    with problems first, ties in the master's order."""
    needle = text.lower()
    shown = [item for item in items if not needle or needle in _haystack(item)]
    if sort == "name":
        shown.sort(key=lambda item: str(item.get("name")))
    elif sort == "state":
        shown.sort(key=lambda item: _STATE_RANK.get(item.get("state"), len(_STATE_RANK)))
    elif sort in ("cpu", "rss", "restarts"):
        field = {"cpu": "cpu_percent", "rss": "rss", "restarts": "restarts"}[sort]
        shown.sort(key=lambda item: -(item.get(field) or 0))
    return shown


def _haystack(item):
    return " ".join(str(item.get(key) or "") for key in ("name", "state", "description")).lower()


# -- keys ---------------------------------------------------------------------

_SEQUENCES = {
    "\033[A": "up", "\033[B": "down", "\033OA": "up", "\033OB": "down",
    "\033[5~": "pgup", "\033[6~": "pgdn", "\033[H": "home", "\033[F": "end",
    "\033[1~": "home", "\033[4~": "end", "\033OH": "home", "\033OF": "end",
    "\033[C": "right", "\033[D": "left",
}
_CONTROLS = {"\r": "enter", "\n": "enter", "\x7f": "backspace", "\x08": "backspace",
             "\x03": "ctrl-c", "\x04": "ctrl-d", "\t": "tab"}


def keys(data):
    """The keys in what one read of the terminal gave: characters, or names
    (up, down, pgup, pgdn, home, end, enter, esc, backspace, ctrl-c)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    found, i = [], 0
    while i < len(text):
        if text[i] == "\033":
            for sequence, name in _SEQUENCES.items():
                if text.startswith(sequence, i):
                    found.append(name)
                    i += len(sequence)
                    break
            else:  # a lone Esc, or a sequence we do not know: Esc, then skip it
                found.append("esc")
                i += 1
                if text.startswith("[", i) or text.startswith("O", i):
                    i += 1
                    while i < len(text) and not text[i].isalpha() and text[i] != "~":
                        i += 1
                    i += 1
            continue
        found.append(_CONTROLS.get(text[i], text[i]))
        i += 1
    return found


# -- text that fits -----------------------------------------------------------


def clean(text):
    """Text safe to write to a terminal: tabs as spaces, other control
    characters (ESC among them) as '?'."""
    text = str(text).replace("\t", "    ")
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _width(ch):
    import unicodedata  # only for text that is not plain ASCII

    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def fit(text, width):
    """text cut to `width` columns (None: not cut)."""
    if width is None or (text.isascii() and len(text) <= width):
        return text if width is None else text[:width]
    used, out = 0, []
    for ch in text:
        w = _width(ch)
        if used + w > width:
            break
        used += w
        out.append(ch)
    return "".join(out)


# -- the frame ----------------------------------------------------------------


def table(rows, selected, width=None, colour=False):
    """The status table's lines: a header, then a row per item, the selected
    one marked with '>' (and in reverse video with colour)."""
    lines = []
    for index, cells in enumerate(render.status_grid(rows)):
        item = rows[index - 1] if index else None
        chosen = item is not None and item.get("name") == selected
        mark = "> " if chosen else "  "
        cells = [clean(cell) for cell in cells]
        plain = fit((mark + "  ".join(cells)).rstrip(), width)
        if colour and chosen:
            plain = _REVERSE + plain + _RESET
        elif colour and index == 0:
            plain = _BOLD + plain + _RESET
        elif colour and item is not None:
            start = len(mark) + len(cells[0]) + 2  # names and marks are ASCII
            name = cells[1].rstrip()
            if len(plain) >= start + len(name):
                plain = plain[:start] + render.state(name, True) + plain[start + len(name):]
        lines.append(plain)
    return lines


def log_lines(items, width=None, colour=False):
    """One line per log item: the time (no date) and the text."""
    lines = []
    for item in items:
        if "dropped" in item:
            lines.append(fit(render.dropped(item["dropped"]), width))
            continue
        text = fit(f"{render.timestamp(item.get('time'), date=False)} {clean(item.get('line', ''))}", width)
        lines.append(render.severity(text) if colour else text)
    return lines


def summary(items):
    """3 instances: 2 RUNNING, 1 FATAL."""
    counts = {}
    for item in items:
        counts[item.get("state") or "-"] = counts.get(item.get("state") or "-", 0) + 1
    word = "instance" if len(items) == 1 else "instances"
    parts = ", ".join(f"{count} {state}" for state, count in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"{len(items)} {word}" + (f": {parts}" if parts else "")


def header(view, items, where, now=None):
    now = time.time() if now is None else now
    text = f"corral top  {where}  {summary(items)}  sort: {view.sort}"
    if view.filter:
        text += f"  filter: {view.filter}"
    return f"{text}  {time.strftime('%H:%M:%S', time.localtime(now))}"


def log_title(view, pane_name):
    if pane_name is None:
        return "-- logs: nothing selected"
    return f"-- logs: {pane_name} ({'following' if view.follow else 'paused: f to follow'})"


def footer(view):
    if view.typing is not None:
        return f"filter: {view.typing}_  (Enter keeps it, Esc puts back the old one)"
    return view.message or FOOTER


def frame(view, items, logs, pane_name, where, size, colour=False, now=None):
    """The lines of one frame for a terminal of size (columns, lines).

    The table takes what it needs up to half the space left by the four
    fixed lines, and scrolls to keep the selection shown; the log pane
    takes the rest and shows the newest lines."""
    columns, height = size
    width = max(1, columns - 1)  # never the last column: no wrap, no scroll
    rows = view.rows(items)
    room = max(0, height - 4)
    shown = min(len(rows), max(1, room // 2)) if room else 0
    index = next((i for i, item in enumerate(rows) if item.get("name") == view.selected), 0)
    view.offset = _scroll(view.offset, index, shown, len(rows))
    window = rows[view.offset:view.offset + shown]
    lines = [fit(header(view, items, where, now), width)]
    lines += table(window, view.selected, width, colour)
    lines.append(fit(log_title(view, pane_name), width))
    pane = max(0, height - len(lines) - 1)
    lines += log_lines(list(logs)[-pane:] if pane else [], width, colour)
    lines += [""] * (height - 1 - len(lines))
    lines.append(fit(footer(view), width))
    return lines[:height]


def _scroll(offset, index, shown, total):
    """The first row to show so that row `index` is in the window."""
    if shown <= 0:
        return 0
    offset = min(offset, max(0, total - shown))
    if index < offset:
        return index
    if index >= offset + shown:
        return index - shown + 1
    return offset


def snapshot(view, items, logs, pane_name):
    """The plain text `corral top` prints when stdout is not a terminal:
    the table, then the log lines of the first instance shown. Not cut."""
    rows = view.rows(items)
    lines = [summary(items)]
    lines += table(rows, None)
    if pane_name is not None:
        lines.append(f"-- logs: {pane_name}")
        lines += log_lines(logs)
    return "\n".join(line.rstrip() for line in lines)
