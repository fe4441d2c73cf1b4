"""The control socket: JSON lines on a private unix socket -> Master methods.

Invariant: no client can block the master or grow its memory without
bound. Each connection is its own task and handles one request at a time;
a request line is read up to protocol.MAX_REQUEST bytes and no further; a
reply waits for the client to take it only inside that client's task;
followers (logs -f, events -f) are written without waiting and, once more
than FOLLOW_BUFFER bytes wait for one of them, are skipped ahead with a
"dropped" notice. Only the master's own uid (or root) may connect.
"""

import asyncio
import os
import signal
import socket
import struct

from corral import protocol
from corral.errors import (E_BAD_ARGUMENT, E_FAILED, E_SHUTTING_DOWN, E_TOO_LONG,
                           ControlError, CorralError)

MAX_CLIENTS = 256
FOLLOW_BUFFER = 1 << 20  # bytes queued to one follower before items are skipped
_CRED = struct.Struct("3i")


def bind_socket(path):
    """A listening unix socket at path, mode 0600 from its first moment.

    A stale file from a dead master is replaced; a live master is refused.
    """
    if len(os.fsencode(path)) > 107:
        raise CorralError(f"socket path too long for a unix socket (max 107 bytes): {path}")
    if os.path.lexists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)  # stale: nobody listens there
        except OSError as exc:
            raise CorralError(f"cannot use socket path {path}: {exc.strerror}") from None
        else:
            raise CorralError(f"another corral master is already running on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # no window where others could connect
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise CorralError(f"cannot create socket {path}: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def parse_signal(value):
    if isinstance(value, int):
        try:
            return signal.Signals(value)
        except ValueError:
            pass
    else:
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if name in signal.Signals.__members__:
            return signal.Signals[name]
    raise ControlError(E_BAD_ARGUMENT, f"signal: unknown signal {value!r}")


class ControlServer:
    def __init__(self, master, path):
        self.master = master
        self.path = path
        self.server = None
        self.clients = {}  # task -> busy flag (handling a request)
        self.commands = {
            "status": self._status, "start": self._start, "stop": self._stop,
            "restart": self._restart, "signal": self._signal, "logs": self._logs,
            "events": self._events, "tree": self._tree, "reload": self._reload,
            "reopen": self._reopen, "shutdown": self._shutdown, "version": self._version,
        }
        assert set(self.commands) == set(protocol.COMMANDS)

    async def start(self):
        sock = bind_socket(self.path)
        self.server = await asyncio.start_unix_server(
            self._serve, sock=sock, limit=protocol.MAX_REQUEST + 1)

    async def close(self):
        """Stop listening; let replies under way finish (1 s), drop the rest."""
        if self.server is not None:
            self.server.close()
        try:
            if os.path.exists(self.path):
                os.unlink(self.path)
        except OSError:
            pass
        busy = [task for task, flag in self.clients.items() if flag]
        if busy:
            await asyncio.wait(busy, timeout=1.0)
        for task in list(self.clients):
            task.cancel()
        if self.clients:
            await asyncio.wait(list(self.clients), timeout=1.0)

    # -- one connection ----------------------------------------------------

    async def _serve(self, reader, writer):
        task = asyncio.current_task()
        self.clients[task] = False
        try:
            if len(self.clients) > MAX_CLIENTS:
                writer.write(protocol.reply_error(None, E_FAILED, "too many clients"))
            elif not self._peer_allowed(writer):
                writer.write(protocol.reply_error(None, E_FAILED, "permission denied"))
            else:
                await self._requests(task, reader, writer)
            await asyncio.wait_for(writer.drain(), 1.0)
        except (ConnectionError, asyncio.TimeoutError, asyncio.CancelledError):
            pass
        finally:
            self.clients.pop(task, None)
            writer.transport.abort()

    def _peer_allowed(self, writer):
        sock = writer.get_extra_info("socket")
        try:
            _pid, uid, _gid = _CRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
        except OSError:
            return False
        return uid in (0, os.getuid())

    async def _requests(self, task, reader, writer):
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # over the limit: the stream cannot be resynchronised
                writer.write(protocol.reply_error(
                    None, E_TOO_LONG, f"request longer than {protocol.MAX_REQUEST} bytes"))
                return
            if not line.endswith(b"\n"):
                return  # the client left (possibly mid-line)
            if not line.strip():
                continue
            self.clients[task] = True
            try:
                request_id, cmd, args = protocol.parse_request(line)
            except ControlError as exc:
                writer.write(protocol.reply_error(exc.request_id, exc.code, exc.message))
            else:
                if cmd in protocol.STREAMING and args.get("follow"):
                    await self._follow(request_id, cmd, args, reader, writer)
                    return
                writer.write(await self._call(request_id, cmd, args))
            self.clients[task] = False
            await writer.drain()

    async def _call(self, request_id, cmd, args):
        try:
            result = await self.commands[cmd](**args)
        except ControlError as exc:
            return protocol.reply_error(request_id, exc.code, exc.message)
        except Exception as exc:  # a bug: answer, log, and keep serving
            self.master.log(f"control: {cmd} failed: {exc!r}")
            return protocol.reply_error(request_id, E_FAILED, f"{cmd} failed: {exc}")
        return protocol.reply_ok(request_id, result)

    async def _follow(self, request_id, cmd, args, reader, writer):
        try:
            initial = await self.commands[cmd](**args)
        except ControlError as exc:
            writer.write(protocol.reply_error(request_id, exc.code, exc.message))
            return
        writer.write(protocol.reply_ok(request_id, initial))
        dropped = 0
        transport = writer.transport

        def send(items):
            nonlocal dropped
            if transport.is_closing():
                return
            if transport.get_write_buffer_size() > FOLLOW_BUFFER:
                dropped += len(items)  # this follower fell behind: skip ahead
                return
            if dropped:
                writer.write(protocol.encode({"id": request_id, "dropped": dropped}))
                dropped = 0
            writer.write(b"".join(protocol.encode({"id": request_id, "stream": item})
                                  for item in items))

        if cmd == "logs":
            hub = self.master.loghub
            token = hub.follow(send, args["name"])
            unsubscribe = lambda: hub.unfollow(token)  # noqa: E731
        else:
            key = object()
            self.master.event_followers[key] = send
            unsubscribe = lambda: self.master.event_followers.pop(key, None)  # noqa: E731
        try:
            while await reader.read(65536):
                pass  # whatever the client sends now is ignored; EOF ends the stream
        finally:
            unsubscribe()

    # -- the commands ------------------------------------------------------

    def _not_shutting_down(self, cmd):
        if self.master.shutting_down:
            raise ControlError(E_SHUTTING_DOWN, f"{cmd}: the master is shutting down")

    async def _status(self, names):
        return self.master.status(names)

    async def _start(self, names):
        self._not_shutting_down("start")
        return await self.master.start(names)

    async def _stop(self, names):
        return await self.master.stop(names)

    async def _restart(self, names):
        self._not_shutting_down("restart")
        return await self.master.restart(names)

    async def _signal(self, names, signal):
        return self.master.send_signal(names, parse_signal(signal))

    async def _logs(self, name, lines, follow):
        if name is not None:
            self.master.resolve([name])  # raises no_such_service
            if any(ch in name for ch in "*?["):
                raise ControlError(E_BAD_ARGUMENT, "logs: give one service or instance name")
        return self.master.loghub.tail(name, lines)

    async def _events(self, lines, follow):
        events = list(self.master.events)
        return events[len(events) - lines:] if lines else []

    async def _tree(self):
        return self.master.tree()

    async def _reload(self):
        self._not_shutting_down("reload")
        return await self.master.reload()

    async def _reopen(self):
        self.master.loghub.reopen()
        return None

    async def _shutdown(self):
        await self.master.shutdown()
        return None

    async def _version(self):
        from corral import __version__

        return {"version": __version__, "pid": os.getpid()}

