"""An operator's start and stop, remembered across a master restart.

systemd keeps enable/disable and s6 its down files; corral keeps, next to
its control socket (`SOCKET.goals`), the goal an operator last gave each
instance: {"version": 1, "goals": {"web:0": "down", "cron": "up"}}. At
start-up an instance with a remembered goal gets it instead of its
`autostart`; `corral run --reset-state` starts from the config alone.
Only the operator's verbs write it (start, stop, restart), never a crash.

Invariants: the file is replaced whole (write, fsync, rename), so a crash
leaves the old one or the new one; a file that cannot be read, parsed or
written is said once in the log and otherwise ignored, never fatal.
"""

import json
import os

VERSION = 1
GOALS = ("up", "down")


def path_for(socket_path):
    return socket_path + ".goals"


class GoalFile:
    def __init__(self, path, log, reset=False):
        self.path = path
        self.log = log  # log(text): a line of the master's
        self.goals = {}
        self._failing = False
        if reset:
            self._remove()
        else:
            self.goals = self._read()

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

    def _read(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            self.log(f"ignoring the remembered goals in {self.path}: {exc}")
            return {}
        goals = data.get("goals") if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("version") != VERSION \
                or not isinstance(goals, dict) \
                or not all(isinstance(k, str) and v in GOALS for k, v in goals.items()):
            self.log(f"ignoring the remembered goals in {self.path}: not a corral goals file "
                     f"(version {VERSION})")
            return {}
        return dict(goals)

    def _write(self):
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"version": VERSION, "goals": self.goals}, f, sort_keys=True)
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
