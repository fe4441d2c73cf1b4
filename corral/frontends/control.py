"""The control socket: JSON lines on a private unix socket -> api.Operations.

Invariant: no client can block the master or grow its memory without
bound. Each connection is its own task and handles one request at a time;
a request line is read up to protocol.MAX_REQUEST bytes and no further; a
reply waits for the client to take it only inside that client's task;
followers (logs -f, events -f) are written without waiting and, once more
than FOLLOW_BUFFER bytes wait for one of them, are skipped ahead with a
"dropped" notice. Only the master's own uid (or root) may connect. At most
MAX_CLIENTS connections are kept: a new one pushes out the connection that
has been idle longest, or else the oldest follower, so that leaked, idle or
forgotten `-f` connections cannot lock the operator out; only when all are
busy with a request is the new one refused.
"""

import asyncio
import os
import signal
import socket
import sys

from corral import protocol
from corral.frontends import peers
from corral.errors import E_BAD_ARGUMENT, E_FAILED, E_TOO_LONG, ControlError, CorralError

MAX_CLIENTS = 256
# Bytes queued to one follower before items are skipped: 256 KiB, as the
# dashboard's streams. 1 MiB held 4 times as much for each stuck follower
# (50 of them: 50 MB of master RSS) for no line a reader keeping up needs.
FOLLOW_BUFFER = 256 << 10
NOTICE_POLL = 0.1  # s between looks at a follower that fell behind, to tell it
LOGS_REPLY_BYTES = 1 << 20  # of line text in one `logs` reply: the newest lines only

# The states of a connection, in ControlServer.clients.
IDLE = "idle"  # waiting for a request: may be pushed out for a newcomer
BUSY = "busy"  # handling a request: close() lets it finish
FOLLOWING = "following"  # streaming logs/events until the client leaves


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


def _all_is_none(name):
    """`logs all` is the merged stream, as `logs` without a name."""
    return None if name == "all" else name


class ControlServer:
    def __init__(self, ops, path, log):
        self.ops = ops  # api.Operations
        self.log = log  # log(text): a line in the master's log
        self.path = path
        self.server = None
        self.clients = {}  # task -> IDLE, BUSY or FOLLOWING, oldest first
        self._writers = {}  # task -> its StreamWriter
        # protocol.COMMANDS is the one table: each command is the method _NAME
        self.commands = {cmd: getattr(self, f"_{cmd}") for cmd in protocol.COMMANDS}

    async def start(self, fd=None):
        """Listen; fd: a socket already listening (handed over by `corral upgrade`)."""
        sock = bind_socket(self.path) if fd is None else socket.socket(fileno=fd)
        self.server = await asyncio.start_unix_server(
            self._serve, sock=sock, limit=protocol.MAX_REQUEST + 1)

    def listening_fd(self):
        return self.server.sockets[0].fileno()

    async def close(self):
        """Stop listening; let replies under way finish (1 s), drop the rest."""
        if self.server is not None:
            self.server.close()
        try:
            if os.path.exists(self.path):
                os.unlink(self.path)
        except OSError:
            pass
        # Requests under way (a `shutdown` waiting to say it is done) get
        # up to 1 s to send their reply; followers and idle ones are cut.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while BUSY in self.clients.values() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for task in list(self.clients):
            task.cancel()
        if self.clients:
            await asyncio.wait(list(self.clients), timeout=1.0)

    # -- one connection ----------------------------------------------------

    async def _serve(self, reader, writer):
        task = asyncio.current_task()
        self.clients[task] = BUSY  # not to be pushed out before it is served
        self._writers[task] = writer
        try:
            if not peers.allowed(writer):
                writer.write(protocol.reply_error(None, E_FAILED, "permission denied"))
            elif len(self.clients) > MAX_CLIENTS and not self._push_out_idle():
                writer.write(protocol.reply_error(None, E_FAILED, "too many clients"))
            else:
                self.clients[task] = IDLE
                await self._requests(task, reader, writer)
            await asyncio.wait_for(writer.drain(), 1.0)
        except (ConnectionError, asyncio.TimeoutError, asyncio.CancelledError):
            pass
        finally:
            self.clients.pop(task, None)
            self._writers.pop(task, None)
            writer.transport.abort()

    def _push_out_idle(self):
        """Close the connection idle longest to make room, else the follower
        there longest (a stream can be followed again); False if all are busy."""
        for wanted, why in ((IDLE, "the connection idle longest"),
                            (FOLLOWING, "the follower connected longest")):
            task = next((t for t, state in self.clients.items() if state == wanted), None)
            if task is not None:
                break
        else:
            return False
        del self.clients[task]  # counts no more, even before its task ends
        writer = self._writers.get(task)
        if writer is not None and not writer.transport.is_closing():
            writer.write(protocol.reply_error(None, E_FAILED, f"too many clients: closing {why}"))
        task.cancel()
        return True

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
            self.clients[task] = BUSY
            try:
                request_id, cmd, args = protocol.parse_request(line)
            except ControlError as exc:
                writer.write(protocol.reply_error(exc.request_id, exc.code, exc.message))
                if exc.code == E_TOO_LONG:
                    return  # as for longer lines: the connection closes
            else:
                if cmd in protocol.STREAMING and args.get("follow"):
                    self.clients[task] = FOLLOWING
                    await self._follow(request_id, cmd, args, reader, writer)
                    return
                _ok, reply = await self._call(request_id, cmd, args)
                writer.write(reply)
            self.clients[task] = IDLE
            await writer.drain()

    async def _call(self, request_id, cmd, args):
        """(ok, reply line) of one request."""
        try:
            result = await self.commands[cmd](**args)
        except ControlError as exc:
            return False, protocol.reply_error(request_id, exc.code, exc.message)
        except Exception as exc:  # a bug: answer, log, and keep serving
            self.log(f"control: {cmd} failed: {exc!r}")
            return False, protocol.reply_error(request_id, E_FAILED, f"{cmd} failed: {exc}")
        return True, protocol.reply_ok(request_id, result)

    async def _follow(self, request_id, cmd, args, reader, writer):
        ok, reply = await self._call(request_id, cmd, args)
        writer.write(reply)
        if not ok:
            return  # an error instead of the history: no stream follows
        dropped = 0
        transport = writer.transport
        loop = asyncio.get_running_loop()
        notice_timer = None

        def tell_dropped():
            """The count of skipped items, as soon as the follower has room: not
            only before the next item (when the output stops, none comes)."""
            nonlocal dropped, notice_timer
            notice_timer = None
            if transport.is_closing() or not dropped:
                return
            if transport.get_write_buffer_size() > FOLLOW_BUFFER:
                notice_timer = loop.call_later(NOTICE_POLL, tell_dropped)
                return
            writer.write(protocol.encode({"id": request_id, "dropped": dropped}))
            dropped = 0

        subscription = None
        id_json = protocol.encode_value(request_id)

        def send(items):
            """Queue what fits in FOLLOW_BUFFER (one item at least, when any
            room is left), count the rest as dropped: taking no more than
            that bounds the work one batch costs (logs.Batch)."""
            nonlocal dropped, notice_timer
            if transport.is_closing():
                return
            room = FOLLOW_BUFFER - transport.get_write_buffer_size()
            if dropped and room > 0:  # before the items that come after the gap
                if notice_timer is not None:
                    notice_timer.cancel()
                tell_dropped()
            if hasattr(items, "stream_items"):  # a LogHub batch: encoded once for all
                data, sent = items.stream_items(id_json, room)
            else:
                queued = []
                for index in range(len(items)) if room > 0 else ():
                    queued.append(protocol.encode({"id": request_id, "stream": items[index]}))
                    room -= len(queued[-1])
                    if room <= 0:
                        break
                data, sent = b"".join(queued), len(queued)
            writer.write(data)
            if sent < len(items):  # this follower fell behind: skip ahead
                dropped += len(items) - sent
                subscription.drop(len(items) - sent)
                if notice_timer is None:
                    notice_timer = loop.call_later(NOTICE_POLL, tell_dropped)

        if cmd == "logs":
            subscription = self.ops.subscribe("logs", send, _all_is_none(args["name"]))
        else:
            subscription = self.ops.subscribe("events", send)
        try:
            while await reader.read(65536):
                pass  # whatever the client sends now is ignored; EOF ends the stream
        finally:
            subscription.close()
            if notice_timer is not None:
                notice_timer.cancel()

    # -- the commands ------------------------------------------------------

    async def _status(self, names, detail):
        if detail:
            return [_detail(d) for d in self.ops.describe(names)]
        return [_row(status) for status in self.ops.status(names)]

    async def _start(self, names):
        return [o.as_dict() for o in await self.ops.start(names)]

    async def _stop(self, names):
        return [o.as_dict() for o in await self.ops.stop(names)]

    async def _restart(self, names, rolling):
        return [o.as_dict() for o in await self.ops.restart(names, rolling=rolling)]

    async def _scale(self, service, count):
        return [o.as_dict() for o in await self.ops.scale(service, count)]

    async def _signal(self, names, signal, group):
        return [o.as_dict() for o in self.ops.signal(names, parse_signal(signal), group=group)]

    async def _logs(self, name, lines, follow, after):
        if name is not None and name != "all":
            if any(ch in name for ch in "*?["):
                raise ControlError(E_BAD_ARGUMENT, "logs: give one service or instance name")
        return self.ops.logs(_all_is_none(name), min(lines, sys.maxsize),
                             max_bytes=LOGS_REPLY_BYTES, after=after)

    async def _events(self, lines, follow):
        return self.ops.events(min(lines, sys.maxsize))

    async def _tree(self):
        return self.ops.tree()

    async def _reload(self):
        return await self.ops.reload()

    async def _reopen(self):
        self.ops.reopen()
        return None

    async def _shutdown(self):
        await self.ops.shutdown()
        return None

    async def _version(self):
        return self.ops.version()

    async def _upgrade(self, python):
        return await self.ops.upgrade(python)


def _row(status):
    """A status row as docs/protocol.md draws it: the facts, and the
    description that `corral status` shows."""
    return {
        "name": status.name, "service": status.service, "state": status.state,
        "pid": status.pid, "uptime": status.uptime, "restarts": status.restarts,
        "last_exit": status.last_exit, "cpu_percent": status.cpu_percent, "rss": status.rss,
        "description": status.description, "reason": status.reason, "since": status.since,
        "exit_code": status.exit_code, "exit_signal": status.exit_signal,
        "spawn_error": status.spawn_error,
    }


def _detail(detail):
    """A status row with what `corral status NAME` shows besides (docs/protocol.md)."""
    return {
        **_row(detail.status), "config": detail.config, "kind": detail.kind,
        "command": list(detail.command) if detail.command else None, "class": detail.cls,
        "after": list(detail.after), "order_after": list(detail.order_after),
        "requires": list(detail.requires), "group": detail.group,
        "sockets": list(detail.sockets), "transitions": detail.transitions, "log": detail.log,
    }
