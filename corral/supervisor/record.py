"""One supervised instance: its state, process, restart history and timers.

Everything the master knows about an instance lives here, in one object,
instead of parallel dicts keyed by name. Only the master mutates a Record,
and only through move(), which goes through the transition table.
"""

from corral.supervisor import states
from corral.supervisor.policy import History
from corral.supervisor.states import State


class Record:
    def __init__(self, spec, index):
        self.spec = spec
        self.index = index
        self.name = spec.instance_names()[index]
        self.state = State.STOPPED
        self.child = None  # spawn.Child while a process exists
        self.started_at = None  # monotonic time of the last spawn
        self.started_wall = None  # wall time of the last spawn, for display
        self.history = History()
        self.restarts = 0  # restarts since the master started it, for status
        self.last_exit = None  # policy.Exit
        self.description = ""  # why it is in its state, for people
        self.wanted = False  # asked to start, waiting for its `after` services
        self.timer = None  # asyncio handle: backoff retry or stop escalation
        self.status_text = None  # the worker's own STATUS= line
        self.failing = None  # why the master is stopping it as a failure (health.py)
        self.health_note = None  # "health: 2 failures (503)" while probes fail (health.py)

    @property
    def service(self):
        return self.spec.name

    @property
    def pid(self):
        return self.child.pid if self.child is not None else None

    def move(self, event):
        """Apply `event`; return the previous state. Raises if illegal."""
        old = self.state
        self.state = states.apply(old, event)
        return old

    def cancel_timer(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def __repr__(self):
        return f"<Record {self.name} {self.state} pid={self.pid}>"
