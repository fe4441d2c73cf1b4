"""`env_file = ".env"`: NAME=VALUE lines, as honcho, foreman and systemd's
EnvironmentFile= read them.

    # a comment, and blank lines, are skipped
    DATABASE_URL=postgres://127.0.0.1/shop
    export DEBUG=1              # "export " is allowed (a shell can source the file)
    GREETING="hello world"      # quotes are removed; inside "", \\n \\" \\\\ are escapes
    RAW='$HOME stays as it is'  # nothing is expanded, in any quotes

A bad line is one error naming the file and the line; nothing starts.
"""

import re

from corral.errors import ConfigError

_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
_ESCAPES = {"n": "\n", '"': '"', "\\": "\\"}


def read(path):
    """[(name, value)] of the file, in its order; ConfigError names path:line."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else f"not UTF-8 text: {exc.reason}"
        raise ConfigError(path, f"cannot read the env_file: {why}") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.fullmatch(stripped)
        if match is None:
            raise ConfigError(path, f"expected NAME=VALUE, not {stripped[:80]!r}", line=number)
        pairs.append((match[1], _value(path, number, match[2])))
    return pairs


def _value(path, number, raw):
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = _closing(raw, quote)
        if end is None:
            raise ConfigError(path, f"the value's {quote} is never closed", line=number)
        rest = raw[end + 1:].strip()
        if rest and not rest.startswith("#"):
            raise ConfigError(path, f"text after the closing {quote}: {rest[:40]!r}", line=number)
        body = raw[1:end]
        if quote == '"':
            body = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], "\\" + m[1]), body)
        value = body
    else:
        value = re.split(r"\s+#", raw, maxsplit=1)[0].strip()  # an unquoted comment
    if "\0" in value:
        raise ConfigError(path, "a value cannot hold a NUL byte", line=number)
    return value


def _closing(raw, quote):
    i = 1
    while i < len(raw):
        if raw[i] == "\\" and quote == '"':
            i += 2
            continue
        if raw[i] == quote:
            return i
        i += 1
    return None
