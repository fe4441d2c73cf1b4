"""An operator's start, stop and scale, remembered across a master restart.

systemd keeps enable/disable and s6 its down files; corral keeps, next to
its control socket (`SOCKET.goals`), the goal an operator last gave each
instance, and the count a service was scaled to with the config's numprocs
at the time: {"version": 1, "goals": {"web:0": "down", "cron": "up"},
"counts": {"web": [4, 2]}}. At start-up an instance with a remembered goal
gets it instead of its `autostart`, and a service scaled before is scaled
again, unless its numprocs in the config changed since (the config is the
newer word, as on reload); `corral run --reset-state` starts from the
config alone. Only the operator's verbs write it (start, stop, restart,
scale), never a crash. ("counts" is optional: a file without it is read as
before, and an older corral ignores it.)

Invariants: the file is replaced whole (write, fsync, rename), so a crash
leaves the old one or the new one; a file that cannot be read, parsed or
written is said once in the log and otherwise ignored, never fatal.
"""

import json
import os

VERSION = 1
GOALS = ("up", "down")


def _count_entry(value):
    """[count, numprocs]: two positive integers."""
    return isinstance(value, list) and len(value) == 2 and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in value)


def path_for(socket_path):
    return socket_path + ".goals"


class GoalFile:
    def __init__(self, path, log, reset=False):
        self.path = path
        self.log = log  # log(text): a line of the master's
        self.goals = {}
        self.counts = {}  # service -> (scaled count, the config's numprocs then)
        self._failing = False
        if reset:
            self._remove()
        else:
            self.goals, self.counts = self._read()

    def initial(self, name, autostart):
        """The goal an instance starts with: remembered, else its autostart."""
        return self.goals.get(name, "up" if autostart else "down")

    def remember(self, names, goal):
        changed = False
        for name in names:
            changed |= self.goals.get(name) != goal
            self.goals[name] = goal
        if changed:
            self._write()

    def remember_count(self, service, count, configured):
        """service was scaled to count while the config says configured."""
        entry = (count, configured) if count != configured else None
        if self.counts.get(service) != entry:
            if entry is None:
                del self.counts[service]
            else:
                self.counts[service] = entry
            self._write()

    def forget_counts(self, services):
        """A reload set these services' count from the config."""
        gone = [name for name in services if self.counts.pop(name, None) is not None]
        if gone:
            self._write()

    def scaled(self, specs):
        """{service: count} to scale to at start-up: those whose config numprocs
        is still what it was when scaled (the others are forgotten)."""
        configured = {spec.name: spec.numprocs for spec in specs}
        stale = [name for name, (_, then) in self.counts.items() if configured.get(name) != then]
        self.forget_counts(stale)
        return {name: count for name, (count, _) in self.counts.items()}

    def _read(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}, {}
        except (OSError, ValueError) as exc:
            self.log(f"ignoring the remembered goals in {self.path}: {exc}")
            return {}, {}
        goals = data.get("goals") if isinstance(data, dict) else None
        counts = data.get("counts", {}) if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("version") != VERSION \
                or not isinstance(goals, dict) \
                or not all(isinstance(k, str) and v in GOALS for k, v in goals.items()) \
                or not isinstance(counts, dict) or not all(_count_entry(v) for v in counts.values()):
            self.log(f"ignoring the remembered goals in {self.path}: not a corral goals file "
                     f"(version {VERSION})")
            return {}, {}
        return dict(goals), {k: tuple(v) for k, v in counts.items()}

    def _write(self):
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                data = {"version": VERSION, "goals": self.goals}
                if self.counts:
                    data["counts"] = {k: list(v) for k, v in self.counts.items()}
                json.dump(data, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            if not self._failing:  # said once; supervision goes on
                self._failing = True
                self.log(f"cannot remember the goals in {self.path}: {exc.strerror or exc}")
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return
        if self._failing:
            self._failing = False
            self.log(f"remembering the goals in {self.path} again")

    def _remove(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.log(f"cannot remove {self.path} (--reset-state): {exc.strerror}")
