"""`corral top`: a live view of the master over its control socket (docs/cli.md).

One select() loop over the keyboard, the log follower and the actions in
flight, so that nothing the master does (a restart that takes its
stop_timeout, a log flood) can freeze the screen:
- `status` is asked every --interval on one connection (it answers at once);
- the selected instance's log is followed on a second connection
  (`logs -f`), reopened when the selection changes;
- each restart, start or stop is sent on a connection of its own, and its
  answer is read when it comes; status is asked again right then.

A frame is drawn by one write: cursor home, each line followed by "erase to
the end of line", then "erase below", on the terminal's alternate screen,
so nothing is cleared first and nothing flickers. At most 20 frames a
second, however fast the log lines come. The size is read at each frame;
SIGWINCH only wakes the loop. When stdout or stdin is not a terminal, or
with --json, one snapshot is printed instead (topview.snapshot).

Standard library only (termios, tty, select): the client path imports no
asyncio (tests/unit/test_cli.py).
"""

import argparse
import os
import select
import signal
import sys
import time
from collections import deque

from corral.cli import render, topview
from corral.cli.client import Client, ClientError, NoMaster
from corral.cli.commands import isatty
from corral.errors import EXIT_OK, ControlError

HELP = "a live view of the services: state, CPU, RSS, restarts, the selected one's log; keys act on it"
LOG_KEEP = 500  # log lines kept for the pane (and asked as history)
SNAPSHOT_LINES = 10  # log lines in the plain snapshot
FRAME_GAP = 0.05  # seconds between two frames at least
MESSAGE_FOR = 5.0  # seconds an action's answer stays in the footer
STATUS_TIMEOUT = 5.0  # seconds a status answer may take before the view says so


def interval(text):
    """Seconds between two status requests (an argparse type): 0.1 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0.1:
        raise argparse.ArgumentTypeError(f"must be 0.1 or more: {text!r}")
    return value


def add(subcommands, common):
    sub = subcommands.add_parser("top", help=HELP, description=HELP, parents=[common])
    sub.add_argument("names", nargs="*", metavar="NAME",
                     help="only these services or instances, as status takes them")
    sub.add_argument("--sort", choices=topview.SORTS, default="config",
                     help="the first order (config, as the master lists them); key o changes it")
    sub.add_argument("--filter", default="", metavar="TEXT",
                     help="only rows whose name, state or description contain TEXT; key / changes it")
    sub.add_argument("--interval", type=interval, default=1.0, metavar="SECONDS",
                     help="seconds between two looks at the status (1)")
    sub.set_defaults(handler=run, client=True)


def run(client, args, out):
    view = topview.View(sort=args.sort, filter=args.filter)
    if args.json or not (out.tty and isatty(sys.stdin)):
        return snapshot(client, args, view, out)
    client.close()  # it found the master; the view opens the connections it needs
    return Top(client.path, args, view, out).run()


def _status_args(names):
    return {"names": list(names)} if names else {}


def snapshot(client, args, view, out):
    """One look, printed plain: for a pipe, a file, a script."""
    items = client.call("status", **_status_args(args.names)) or []
    rows = view.rows(items)
    name = view.selected
    logs = (client.call("logs", name=name, lines=SNAPSHOT_LINES) or []) if name else []
    if args.json:
        out.line(render.to_json({"status": rows, "logs": logs}))
    else:
        out.line(topview.snapshot(view, items, logs, name))
    return EXIT_OK


class Top:
    """The live view: the terminal, the connections, the loop."""

    def __init__(self, path, args, view, out):
        self.path = path
        self.client = None  # status, with a timeout: a master that hangs cannot freeze the view
        self.names = args.names
        self.interval = args.interval
        self.view = view
        self.out = out
        self.items = []
        self.logs = deque(maxlen=LOG_KEEP)
        self.pane = None  # whose lines the log pane holds
        self.follower = None  # the Client following self.pane's log
        self.follow_failed = False  # then it is tried again at the next status only
        self.actions = {}  # Client -> "restart web:0", awaiting its answer
        self.trouble = None  # why there is no status, in words
        self.message_until = 0.0

    # -- the terminal --------------------------------------------------------

    def run(self):
        import termios
        import tty

        fd_in, fd_out = sys.stdin.fileno(), self.out.stream.fileno()
        self.out.stream.flush()
        saved = termios.tcgetattr(fd_in)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        old_winch = signal.signal(signal.SIGWINCH, lambda signum, frame: None)  # wakes select
        try:
            tty.setcbreak(fd_in)  # keys one by one, no echo; Ctrl-C still interrupts
            _write(fd_out, "\033[?1049h\033[?25l")  # the alternate screen, no cursor
            self.loop(fd_in, fd_out, wake_r)
        finally:
            _write(fd_out, "\033[?25h\033[?1049l")
            termios.tcsetattr(fd_in, termios.TCSADRAIN, saved)
            signal.signal(signal.SIGWINCH, old_winch)
            signal.set_wakeup_fd(old_wakeup)
            os.close(wake_r)
            os.close(wake_w)
            for other in [self.follower, self.client, *self.actions]:
                if other is not None:
                    other.close()
        return EXIT_OK

    def loop(self, fd_in, fd_out, wake):
        next_poll = last_draw = 0.0
        dirty = True
        while True:
            now = time.monotonic()
            if now >= next_poll:
                self.poll()
                next_poll, dirty = now + self.interval, True
            self.follow()
            if self.view.message and now >= self.message_until:
                self.view.message, dirty = "", True
            if dirty and now - last_draw >= FRAME_GAP:
                self.draw(fd_out)
                last_draw, dirty = now, False
            timeout = next_poll - now
            if dirty:
                timeout = min(timeout, FRAME_GAP - (now - last_draw))
            if self.view.message:
                timeout = min(timeout, self.message_until - now)
            readers = [fd_in, wake, *self.actions] + ([self.follower] if self.follower else [])
            ready, _, _ = select.select(readers, [], [], max(0.0, timeout))
            for reader in ready:
                dirty = True
                if reader == fd_in:
                    data = os.read(fd_in, 1024)
                    if not data:
                        return  # the terminal is gone
                    for key in topview.keys(data):
                        action = self.view.key(key, self.items)
                        if action == ("quit",):
                            return
                        if action is not None:
                            self.act(*action)
                            next_poll = 0.0  # show the STOPPING at once
                elif reader == wake:
                    while _drain(wake):
                        pass
                elif reader is self.follower:
                    self.read_logs()
                elif reader in self.actions and self.answered(reader):
                    next_poll = 0.0  # and the new pid
                # else: a follower a key of this batch replaced (closed already)

    def draw(self, fd_out):
        try:
            size = os.get_terminal_size(fd_out)
        except OSError:
            size = os.terminal_size((80, 24))
        where = self.trouble or self.path
        lines = topview.frame(self.view, self.items, self.logs, self.pane, where,
                              (size.columns, size.lines), colour=self.out.colour)
        _write(fd_out, "\033[H" + "\033[K\r\n".join(lines) + "\033[K\033[J")

    def say(self, text):
        self.view.message = text
        self.message_until = time.monotonic() + MESSAGE_FOR

    # -- the master ----------------------------------------------------------

    def poll(self):
        try:
            if self.client is None:
                self.client = Client(self.path, timeout=STATUS_TIMEOUT)
            self.items = self.client.call("status", **_status_args(self.names)) or []
            self.trouble = None
        except (NoMaster, ClientError, OSError) as exc:  # OSError: TimeoutError
            if self.client is not None:
                self.client.close()  # a reply may be half read: start afresh
            self.client, self.items = None, []
            reason = f"no answer within {STATUS_TIMEOUT:g} s" if isinstance(exc, TimeoutError) else str(exc)
            self.trouble = f"{reason}; trying again"
        except ControlError as exc:
            self.items, self.trouble = [], exc.message or exc.code
        self.follow(retry=True)

    def follow(self, retry=False):
        """Follow the selected instance's log, unless paused (the pane then
        keeps what it has). After a failure, try again only at a status."""
        wanted = self.view.selected if self.view.follow else None
        if wanted is None:
            self._drop_follower()
            self.follow_failed = False
            return
        if wanted == self.pane and (self.follower is not None or (self.follow_failed and not retry)):
            return
        self._drop_follower()
        self.logs.clear()  # the history that comes replaces it
        self.pane, self.follow_failed = wanted, False
        try:
            self.follower = Client(self.path)
            self.follower.send("logs", name=wanted, lines=LOG_KEEP, follow=True)
        except (NoMaster, ClientError):
            self._drop_follower()
            self.follow_failed = True

    def read_logs(self):
        try:
            messages = self.follower.messages()
        except ClientError:
            messages = None
        if messages is None:  # the master went away, or cut this follower
            self._drop_follower()
            self.follow_failed = True
            return
        for message in messages:
            if "stream" in message:
                self.logs.append(message["stream"])
            elif "dropped" in message:
                self.logs.append({"dropped": message["dropped"]})
            elif "ok" in message:
                try:
                    self.logs.extend(self.follower.result(message) or [])
                except ControlError as exc:
                    self.say(f"logs {self.pane}: {exc.message or exc.code}")
                    self._drop_follower()
                    self.follow_failed = True
                    return

    def _drop_follower(self):
        if self.follower is not None:
            self.follower.close()
            self.follower = None

    def act(self, verb, name):
        """Ask for it on a connection of its own; the answer comes later."""
        try:
            client = Client(self.path)
            client.send(verb, names=[name])
        except (NoMaster, ClientError) as exc:
            self.say(f"{verb} {name}: {exc}")
            return
        self.actions[client] = f"{verb} {name}"
        self.say(f"{verb} {name}: asked")

    def answered(self, client):
        """Read an action's answer; True once it came (or cannot come)."""
        what = self.actions[client]
        try:
            messages = client.messages()
        except ClientError as exc:
            messages, text = None, f"{what}: {exc}"
        else:
            text = f"{what}: the master closed the connection"
        if messages is not None:
            reply = next((message for message in messages if "ok" in message), None)
            if reply is None:
                return False
            try:
                items = client.result(reply) or []
                text = "; ".join(render.action_line(item) for item in items) or f"{what}: done"
            except ControlError as exc:
                text = f"{what}: {exc.message or exc.code}"
        client.close()
        del self.actions[client]
        self.say(topview.clean(text))
        return True


def _write(fd, text):
    data = text.encode("utf-8", "replace")
    while data:
        data = data[os.write(fd, data):]


def _drain(fd):
    try:
        return os.read(fd, 512)
    except BlockingIOError:
        return b""
