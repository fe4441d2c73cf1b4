"""Sizes in bytes, one syntax for every setting that takes one (pure).

log_max_bytes, max_memory and supervisord.conf's *_maxbytes all read sizes
here: an integer, or a string like "512K", "50MB", "1.5G", "64 MiB" (powers
of 1024, any case, B or iB may follow). Before there were two parsers with
different rules; a size that one key took and another refused surprised.
"""

import re

_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(I?B)?\s*")


def parse_size(value, minimum=0):
    """Bytes (an int >= minimum, 0 or 1) from an int or a size string; ValueError."""
    size = None
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.upper())
        if match and not (match[3] == "IB" and not match[2]):
            size = int(float(match[1]) * 1024 ** _POWERS[match[2]])
    if size is None or size < minimum:
        raise ValueError(f"must be a size {'>= 0' if minimum == 0 else '> 0'}: bytes, or a "
                         'string like "512M", "1.5G", "100K" (powers of 1024; B or iB may '
                         f"follow), not {value!r}")
    return size


def format_bytes(size):
    """600.2M, 512M, 1.5G, 900K, 12B: at most one decimal, powers of 1024."""
    for unit in ("T", "G", "M", "K"):
        scale = 1024 ** _POWERS[unit]
        if size >= scale:
            text = f"{size / scale:.1f}"
            return (text[:-2] if text.endswith(".0") else text) + unit
    return f"{size}B"
