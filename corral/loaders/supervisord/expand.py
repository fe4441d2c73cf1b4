"""supervisord's %(name)s expansions, and its value types (booleans, lists).

A value is expanded as supervisord does, with Python's %-formatting over
a dict of names: %(here)s (the folder of the file the value is in),
%(ENV_X)s (the master's environment at load time), and in programs
%(program_name)s, %(process_num)d (with its formats, %(process_num)02d),
%(group_name)s, %(host_node_name)s and %(numprocs)d. %% is a literal %.
"""

import os
import shlex
import socket

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def base_names(value):
    """The names every value may use: here and ENV_*."""
    names = {f"ENV_{key}": val for key, val in os.environ.items()}
    names["here"] = os.path.dirname(os.path.abspath(value.path))
    names["host_node_name"] = socket.gethostname()
    return names


def expand(section, key, names):
    """The value of key in section with names expanded; ValueError naming what."""
    value = section.values[key]
    all_names = {**base_names(value), **names}
    try:
        return value.text % all_names
    except KeyError as exc:
        known = ", ".join(sorted(n for n in all_names if not n.startswith("ENV_")))
        raise section.error(f"%({exc.args[0]})s cannot be expanded (known: {known}, "
                            "ENV_NAME for an environment variable)", key) from None
    except (ValueError, TypeError) as exc:
        raise section.error(f"bad %-expansion in {value.text!r}: {exc} (write %% for a "
                            "literal %)", key) from None


def boolean(section, key, text):
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise section.error(f"must be true or false, not {text!r}", key)


def integer(section, key, text, low=0, high=None):
    try:
        number = int(text)
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        limits = f">= {low}" + (f" and <= {high}" if high is not None else "")
        raise section.error(f"must be an integer {limits}, not {text!r}", key)
    return number


def int_list(section, key, text, low=0, high=255):
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise section.error(f"must be a comma-separated list of integers, not {text!r}", key)
    return tuple(integer(section, key, part, low, high) for part in parts)


def environment(section, key, text):
    """KEY="value",KEY2=value2 (supervisord's quoting: shell-like, commas between)."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace = " \t\r\n"
    lexer.wordchars += "/.+-():@%$[]{}!~*^&?<>|\\"
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise section.error(f"cannot read {text!r}: {exc}", key) from None
    env = {}
    for i in range(0, len(tokens), 4):
        pair = tokens[i:i + 4]
        if len(pair) < 3 or pair[1] != "=" or pair[0] in "=," or pair[2] in ("=", ",") \
                or (len(pair) == 4 and pair[3] != ","):
            raise section.error(f'must be KEY="value" pairs separated by commas, not {text!r}',
                                key)
        env[pair[0]] = pair[2]
    return env
