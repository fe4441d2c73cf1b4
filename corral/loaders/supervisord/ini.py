"""supervisord.conf as text: sections, keys and values, each with its line.

supervisord reads its file with Python's configparser; this reader keeps
what that accepts (`key = value` or `key: value`, `;` and `#` comment lines,
an inline comment after whitespace, indented continuation lines, keys in
any case) and adds what configparser loses: the file and the line of every
section and value, so that every error can name them. [include] sections
are followed here, globs relative to the including file, in sorted order.
"""

import glob
import os
import re
from dataclasses import dataclass, field

from corral.errors import ConfigError

_SECTION = re.compile(r"\[(?P<name>[^\]]+)\]\s*(?:[;#].*)?$")
_OPTION = re.compile(r"(?P<key>[^=:\s][^=:]*?)\s*[=:]\s*(?P<value>.*)$")
_INLINE_COMMENT = re.compile(r"\s[;#]")
MAX_INCLUDE_DEPTH = 10


@dataclass
class Value:
    text: str
    path: str
    line: int


@dataclass
class Section:
    name: str  # as written, e.g. "program:web"
    path: str
    line: int
    values: dict = field(default_factory=dict)  # lowercased key -> Value

    @property
    def kind(self):
        return self.name.partition(":")[0]

    @property
    def title(self):
        return self.name.partition(":")[2]

    def error(self, message, key=None):
        """A ConfigError at this section, or at key's line when the key is given."""
        value = self.values.get(key) if key is not None else None
        where = f"[{self.name}]" + (f" key {key!r}" if key is not None else "")
        return ConfigError(value.path if value else self.path, f"{where}: {message}",
                           line=value.line if value else self.line)


def first_section(head):
    """The name of the first section in head (bytes), or None."""
    for raw in head.decode("utf-8", "replace").splitlines():
        text = raw.strip()
        if not text or text[0] in ";#":
            continue
        match = _SECTION.match(text)
        return match["name"].strip() if match else None
    return None


def read(path):
    """The sections of path and of the files it includes, in reading order."""
    sections = []
    _read(path, sections, depth=0)
    return sections


def _read(path, sections, depth):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise ConfigError(path, f"not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise ConfigError(path, f"cannot read config: {exc.strerror or exc}") from None
    mine = _parse(path, text)
    seen = {s.name for s in sections}
    for section in mine:
        if section.name in seen:
            raise ConfigError(path, f"section [{section.name}] appears twice (supervisord "
                              "refuses a repeated section too)", line=section.line)
        seen.add(section.name)
        if section.name == "include":
            sections.append(section)
            for included in _include_files(section):
                if depth >= MAX_INCLUDE_DEPTH:
                    raise section.error(f"includes nest deeper than {MAX_INCLUDE_DEPTH} "
                                        "(an include loop?)", "files")
                _read(included, sections, depth + 1)
            seen = {s.name for s in sections}
        else:
            sections.append(section)


def _include_files(section):
    files = section.values.get("files")
    if files is None:
        raise section.error("needs 'files' (space-separated globs)")
    folder = os.path.dirname(section.path)
    text = files.text.replace("%(here)s", folder)
    found = []
    for pattern in text.split():
        pattern = os.path.join(folder, os.path.expanduser(pattern))
        found.extend(sorted(glob.glob(pattern)))
    return found


def _parse(path, text):
    sections, current, last = [], None, None
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped[0] in ";#":
            continue
        if raw[0] in " \t" and last is not None:  # a continuation line
            last.text += "\n" + _uncomment(stripped)
            continue
        match = _SECTION.match(stripped)
        if match:
            name = match["name"].strip()
            current, last = Section(name, path, number), None
            sections.append(current)
            continue
        if current is None:
            raise ConfigError(path, "a key before the first [section]", line=number)
        match = _OPTION.match(stripped)
        if not match:
            raise ConfigError(path, f"[{current.name}]: cannot read {stripped!r}: write "
                              "key = value", line=number)
        key = match["key"].strip().lower()
        if key in current.values:
            raise ConfigError(path, f"[{current.name}] key {key!r}: given twice (first on "
                              f"line {current.values[key].line})", line=number)
        last = current.values[key] = Value(_uncomment(match["value"]), path, number)
    return sections


def _uncomment(text):
    found = _INLINE_COMMENT.search(text)
    return (text[:found.start()] if found else text).strip()
