"""Raw per-stream log files of a service (pure: the spec side of logs).

supervisord writes each program's stdout and stderr raw, as the program
wrote them, into stdout_logfile and stderr_logfile, each rotating at its
own _maxbytes with its own _backups. A ServiceSpec carries these as
StreamFile values; supervisor/logs.py (LogHub) opens and writes them.
"""

from dataclasses import dataclass

STREAMS = ("out", "err")


@dataclass(frozen=True)
class StreamFile:
    stream: str  # "out" or "err": which pipe's bytes go into the file
    path: str
    max_bytes: int = 0  # rotate past this size (0: never)
    backups: int = 0  # old files kept: path.1 ... path.N
