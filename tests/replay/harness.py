"""A fake world for the decision step: a fake clock, a fake spawner, no loop.

World plays the shell's part (supervisor/master.py) the way a test can
script: it feeds one input, executes the effects it can (a Spawn answers
Spawned with the next fake pid, or SpawnFailed when told to), keeps what
the others asked (signals, probes, log lines, moves) in lists, and after a
move sends one Settle, as the shell does once per loop iteration.
advance() moves the clock and delivers every deadline that falls due, in
time order, as the shell's timers would.
"""

import signal

from corral.clock import FakeClock
from corral.core import messages as m
from corral.core.policy import Exit
from corral.core.record import Supervision
from corral.core.step import step
from corral.spec import ServiceSpec


def command(name, **settings):
    settings.setdefault("command", (name,))
    settings.setdefault("backoff_jitter", 0.0)
    return ServiceSpec(name=name, **settings)


def python_tree(name, **settings):
    settings.setdefault("backoff_jitter", 0.0)
    return ServiceSpec(name=name, factory="app:make", **settings)


class World:
    def __init__(self, *specs, clock=None):
        self.clock = clock or FakeClock()
        self.sup = Supervision()
        self.sup.add(*specs)
        self.next_pid = 100
        self.fail_spawn = {}  # name -> (error, fatal) for its next spawns
        self.pids = {}  # pid -> name: every process ever spawned
        self.alive = set()  # pids whose Exited has not been fed
        self.signals = []  # (name, pid, signal, whom)
        self.probes = []  # (name, pid, what), asked and not answered
        self.memory = []  # SampleMemory names, asked
        self.moves = []  # (name, old, new, reason)
        self.lines = []  # log lines, "NAME: text" as the master writes them
        self.closed = []  # CloseSockets services
        self.done = None

    # -- driving ---------------------------------------------------------------

    def feed(self, item):
        moved = self._execute(step(self.sup, item, self.clock.now(), random=lambda: 0.5))
        while moved:  # the shell's Settle after a move, until nothing moves
            moved = self._execute(step(self.sup, m.Settle(), self.clock.now(),
                                       random=lambda: 0.5))

    def _execute(self, effects):
        moved = False
        for effect in effects:
            if isinstance(effect, m.Spawn):
                failure = self.fail_spawn.get(effect.name)
                if failure is not None:
                    moved |= self._execute(self._step(m.SpawnFailed(effect.name, *failure)))
                else:
                    pid = self.next_pid
                    self.next_pid += 1
                    self.pids[pid] = effect.name
                    self.alive.add(pid)
                    moved |= self._execute(self._step(m.Spawned(effect.name, pid)))
            elif isinstance(effect, m.Signal):
                self.signals.append((effect.name, effect.pid, effect.signal, effect.whom))
            elif isinstance(effect, m.Probe):
                self.probes.append((effect.name, effect.pid, effect.what))
            elif isinstance(effect, m.SampleMemory):
                self.memory.append(effect.names)
            elif isinstance(effect, m.CheckLeftovers):
                self.probes.append((effect.name, effect.pid, "leftovers"))
            elif isinstance(effect, m.Moved):
                moved = True
                self.moves.append((effect.name, effect.old.value, effect.new.value,
                                   effect.reason))
            elif isinstance(effect, m.Log):
                self.lines.append(effect.text if effect.name is None
                                  else f"{effect.name}: {effect.text}")
            elif isinstance(effect, m.CloseSockets):
                self.closed.append(effect.services)
            elif isinstance(effect, m.Done):
                self.done = effect.code
        return moved

    def _step(self, item):
        return step(self.sup, item, self.clock.now(), random=lambda: 0.5)

    def deadlines(self):
        """[(when, name or None, kind)] of every armed deadline, soonest first."""
        found = [(when, None, kind) for kind, when in self.sup.deadlines.items()]
        for record in self.sup.records.values():
            found += [(when, record.name, kind) for kind, when in record.deadlines.items()]
        return sorted(found, key=lambda d: (d[0], d[1] or "", d[2]))

    def advance(self, seconds):
        """Move the clock by seconds, delivering each deadline at its time."""
        end = self.clock.now() + seconds
        while True:
            due = [d for d in self.deadlines() if d[0] <= end]
            if not due:
                break
            when, name, kind = due[0]
            self.clock.advance(max(0.0, when - self.clock.now()))
            self.feed(m.Due(name, kind))
        self.clock.advance(end - self.clock.now())

    # -- what processes do -------------------------------------------------------

    def exit(self, name, code=0, sig=None, leftovers=False):
        pid = self.pid(name)
        self.alive.discard(pid)
        self.feed(m.Exited(name, pid, Exit(code=None if sig else code, signal=sig),
                           leftovers=leftovers))

    def killed(self, name, sig=signal.SIGKILL):
        """The process died of what corral sent it."""
        self.exit(name, sig=sig)

    def notify(self, name, line):
        self.feed(m.Notified(name, self.pid(name), line))

    def answer(self, name, what, ok, detail=""):
        """Answer the oldest open probe of name."""
        for i, (n, pid, w) in enumerate(self.probes):
            if n == name and w == what:
                del self.probes[i]
                self.feed(m.Probed(name, pid, what, ok, detail))
                return
        raise AssertionError(f"no {what} probe of {name} was asked: {self.probes}")

    # -- looking -------------------------------------------------------------------

    def record(self, name):
        return self.sup.records[name]

    def state(self, name):
        return self.sup.records[name].state.value

    def states(self):
        return {name: r.state.value for name, r in self.sup.records.items()}

    def pid(self, name):
        return self.sup.records[name].pid

    def signalled(self, name=None):
        return [(s, w) for n, _pid, s, w in self.signals if name is None or n == name]

    def moves_of(self, name):
        return [(old, new) for n, old, new, _ in self.moves if n == name]

    def spawned_order(self):
        return [name for _, name in sorted(self.pids.items())]
