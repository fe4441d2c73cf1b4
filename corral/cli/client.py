"""A small blocking client of the control socket (docs/protocol.md).

    with Client("/run/app/corral.sock") as client:
        rows = client.call("status")
        for item in client.stream("logs", name="web", follow=True):
            ...

Standard library only (socket, json via corral.protocol), so that the CLI
starts fast.
"""

import errno
import json
import os
import socket

from corral import protocol
from corral.errors import ControlError, CorralError

# connect() errors that mean "nobody is listening there".
_NOT_LISTENING = {
    errno.ENOENT: "no such socket",
    errno.ECONNREFUSED: "connection refused",
    errno.ENOTSOCK: "not a socket",
}

_UNIX_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL


class NoMaster(CorralError):
    """Nothing answers on the control socket (exit code 3)."""

    def __init__(self, path, reason, message=None):
        self.path = path
        self.reason = reason
        super().__init__(message or f"no master answering on {path}: {reason}")


class ClientError(CorralError):
    """The socket exists but cannot be used, or the master sent garbage."""


class Dropped:
    """A marker in a stream: the master skipped `count` items for this client."""

    __slots__ = ("count",)

    def __init__(self, count):
        self.count = count

    def __repr__(self):
        return f"Dropped({self.count})"

    def __eq__(self, other):
        return isinstance(other, Dropped) and other.count == self.count


class Client:
    """One connection to the master; requests are answered in order."""

    def __init__(self, path, timeout=None):
        """timeout: seconds a read may wait before TimeoutError (an OSError);
        None waits as long as the master takes."""
        self.path = path
        self._buffer = b""
        self._next_id = 1
        self._sock = _connect(path)
        self._sock.settimeout(timeout)

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def call(self, cmd, **args):
        """Send one request and return its result; raise ControlError on ok=false."""
        request_id = self._send(cmd, args)
        return self._result(request_id, self._read_reply(request_id))

    def stream(self, cmd, **args):
        """Yield the result of a streaming request, then each streamed item.

        A `{"id": N, "dropped": K}` notice is yielded as Dropped(K). The
        generator ends when the master closes the connection.
        """
        request_id = self._send(cmd, args)
        yield self._result(request_id, self._read_reply(request_id))
        while True:
            message = self._read_message()
            if message is None:
                return
            if message.get("id") != request_id:
                continue
            if "stream" in message:
                yield message["stream"]
            elif "dropped" in message:
                yield Dropped(message["dropped"])
            elif message.get("ok") is False:
                self._result(request_id, message)  # raises ControlError

    # -- without blocking (for a select loop) ----------------------------

    def fileno(self):
        return self._sock.fileno()

    def send(self, cmd, **args):
        """Send one request and return its id; read the answer with messages()."""
        return self._send(cmd, args)

    def messages(self):
        """The messages complete after one read: call it when select() says the
        socket is readable, so that it does not block. None once the master
        has closed the connection (after the messages still buffered)."""
        try:
            chunk = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            chunk = None
        except ConnectionResetError:
            chunk = b""
        if chunk:
            self._buffer += chunk
        found = []
        while (message := self._take_message()) is not None:
            found.append(message)
        if chunk == b"" and not found:
            return None
        return found

    def result(self, message):
        """The result of a reply from messages(); ControlError for an error."""
        return self._result(message.get("id"), message)

    # -- internals -------------------------------------------------------

    def _send(self, cmd, args):
        request_id = self._next_id
        self._next_id += 1
        try:
            self._sock.sendall(protocol.request(request_id, cmd, **args))
        except (BrokenPipeError, ConnectionResetError):
            raise NoMaster(self.path, "connection closed before a reply") from None
        return request_id

    def _read_reply(self, request_id):
        while True:
            message = self._read_message()
            if message is None:
                raise NoMaster(self.path, "connection closed before a reply")
            # Errors about unreadable requests carry "id": null.
            if message.get("id") in (request_id, None) and "ok" in message:
                return message

    def _result(self, request_id, message):
        if message.get("ok") is True:
            return message.get("result")
        error = message.get("error")
        if not isinstance(error, dict):
            raise ClientError(f"bad reply from master on {self.path}: {message!r}")
        raise ControlError(str(error.get("code", "")), str(error.get("message", "")))

    def _take_message(self):
        """The next complete JSON object in the buffer, or None."""
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                return None
            line = self._buffer[:newline]
            self._buffer = self._buffer[newline + 1 :]
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                raise ClientError(f"bad reply from master on {self.path}: {line[:200]!r}") from None
            if not isinstance(message, dict):
                raise ClientError(f"bad reply from master on {self.path}: {line[:200]!r}")
            return message

    def _read_message(self):
        """Return the next JSON object from the master, or None at end of stream."""
        while True:
            message = self._take_message()
            if message is not None:
                return message
            try:
                chunk = self._sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None  # a partial last line without newline is not a message
            self._buffer += chunk


def _connect(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        target = path
        dir_fd = None
        if len(os.fsencode(path)) > _UNIX_PATH_MAX:
            # Too long for sun_path: reach it through an fd of its folder.
            folder, name = os.path.split(path)
            try:
                dir_fd = os.open(folder or ".", os.O_RDONLY | os.O_DIRECTORY)
            except OSError as exc:
                if exc.errno in _NOT_LISTENING:
                    raise NoMaster(path, _NOT_LISTENING[exc.errno]) from None
                raise ClientError(f"cannot connect to {path}: {exc.strerror}") from None
            target = f"/proc/self/fd/{dir_fd}/{name}"
        try:
            sock.connect(target)
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
    except OSError as exc:
        sock.close()
        if exc.errno in _NOT_LISTENING:
            raise NoMaster(path, _NOT_LISTENING[exc.errno]) from None
        reason = exc.strerror or str(exc)
        raise ClientError(f"cannot connect to {path}: {reason}") from None
    except BaseException:
        sock.close()
        raise
    return sock
