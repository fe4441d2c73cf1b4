"""Errors, exit codes and control error codes shared by every part of corral.

Errors that users see are printed as one line: they name the place (file,
service, key, request) so that nobody needs a traceback to find it.
"""

# Exit codes of the `corral` command.
EXIT_OK = 0
EXIT_FAILED = 1  # a requested action failed (unknown service, start failed, bad config)
EXIT_USAGE = 2  # bad command line
EXIT_NO_MASTER = 3  # nothing answers on the control socket

# Exit code of a Python worker whose subtree cannot be loaded or started
# (import error, startService raised before ready). The master does not
# retry it: it goes FATAL at once, as gunicorn treats its WORKER_BOOT_ERROR.
EXIT_WORKER_BOOT = 78  # EX_CONFIG from sysexits.h
EXIT_TASK_CRASHED = 70  # EX_SOFTWARE: a task raised and task_crash = "restart"

# Error codes of the control protocol (docs/protocol.md).
E_BAD_REQUEST = "bad_request"  # not JSON, not an object, missing or wrong fields
E_TOO_LONG = "too_long"  # a request line over the size limit
E_UNKNOWN_COMMAND = "unknown_command"
E_BAD_ARGUMENT = "bad_argument"  # an argument of the wrong type or value
E_NO_SUCH_SERVICE = "no_such_service"
E_FAILED = "failed"  # the action ran and did not succeed (start failed)
E_CONFIG = "config_error"  # reload refused: the new config is broken
E_SHUTTING_DOWN = "shutting_down"
# Codes of Operations verbs that no control command offers yet (send_stdin,
# which supervisord's XML-RPC sendProcessStdin calls).
E_NOT_RUNNING = "not_running"  # the instance has no process, or it is being stopped
E_NO_STDIN = "no_stdin"  # its stdin is not a pipe the master holds, or it closed it


class CorralError(Exception):
    """Base of the errors corral reports to users without a traceback."""


class ConfigError(CorralError):
    """A config that cannot be used; nothing starts (or, on reload, changes)."""

    def __init__(self, path, message, service=None, key=None, line=None, detail=None):
        self.path = str(path) if path is not None else None
        # Text shown before the one-line error, e.g. the traceback of a .py
        # config that raised, cut to start at the user's own file.
        self.detail = detail
        self.message = message
        self.service = service
        self.key = key
        self.line = line
        super().__init__(str(self))

    def __str__(self):
        place = self.path or "<config>"
        if self.line is not None:
            place += f":{self.line}"
        parts = [place]
        if self.service is not None:
            parts.append(f"service {self.service!r}")
        if self.key is not None:
            parts.append(f"key {self.key!r}")
        return ": ".join(parts) + ": " + self.message


class ControlError(CorralError):
    """A control request that failed, with its protocol error code."""

    def __init__(self, code, message):
        self.code = code
        self.message = message
        super().__init__(message)
