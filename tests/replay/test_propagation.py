"""Dependencies that propagate (`requires`) and `on_fatal`, through the step.

`after` orders only. `requires` (which is also an `after`) says a service
cannot run without another: when that one is stopped, or ends at rest for
good (FATAL, EXITED), its dependents are stopped first and wait, with the
reason in their rows; when it runs again, they come back. A crash that the
policy restarts takes nobody along: the dependency is coming back anyway.
"""

from corral.core import messages as m
from tests.replay.harness import World, command


def shop():
    return World(command("redis"),
                 command("web", after=("redis",), requires=("redis",)),
                 command("mailer", after=("redis",), requires=("redis",)),
                 command("cron", after=("redis",)))


def start_all(w):
    w.feed(m.Start(tuple(w.sup.records), fresh=True))


def test_stopping_a_dependency_stops_what_requires_it_first_and_start_brings_it_back():
    w = shop()
    start_all(w)
    w.feed(m.Stop(("redis",)))
    # dependents first; redis waits for them; cron (after only) is left alone
    assert w.states() == {"redis": "RUNNING", "web": "STOPPING", "mailer": "STOPPING",
                          "cron": "RUNNING"}
    assert "web: stopping: it requires redis, and redis is stopping" in w.lines
    w.exit("web")
    assert w.state("redis") == "RUNNING"
    w.exit("mailer")
    assert w.state("redis") == "STOPPING"
    w.exit("redis")
    assert w.states() == {"redis": "STOPPED", "web": "WAITING", "mailer": "WAITING",
                          "cron": "RUNNING"}
    assert w.record("web").reason == "stopped: redis is stopping; waiting for redis"
    w.feed(m.Start(("redis",), fresh=True))
    assert w.states() == {"redis": "RUNNING", "web": "RUNNING", "mailer": "RUNNING",
                          "cron": "RUNNING"}
    assert w.spawned_order()[-3:] == ["redis", "web", "mailer"]


def test_a_fatal_dependency_stops_its_dependents_with_the_reason_and_its_return_revives_them():
    w = World(command("db", max_restarts=0), command("web", after=("db",), requires=("db",)))
    start_all(w)
    w.exit("db", code=1)
    assert w.state("db") == "FATAL" and w.state("web") == "STOPPING"
    assert w.record("web").reason == "stopped: db is FATAL"
    w.exit("web")
    assert w.state("web") == "WAITING"
    assert w.record("web").reason == "stopped: db is FATAL; waiting for db"
    w.feed(m.Start(("db",), fresh=True))
    assert w.states() == {"db": "RUNNING", "web": "RUNNING"}


def test_an_operators_stop_of_the_dependent_is_not_undone_by_the_dependency():
    w = shop()
    start_all(w)
    w.feed(m.Stop(("web",)))
    w.exit("web")
    w.feed(m.Stop(("redis",)))
    w.exit("mailer")
    w.exit("redis")
    w.feed(m.Start(("redis",), fresh=True))
    assert w.state("web") == "STOPPED" and w.state("mailer") == "RUNNING"


def test_a_crash_that_the_policy_restarts_takes_nobody_along():
    w = World(command("db", backoff_initial=1.0), command("web", after=("db",),
                                                            requires=("db",)))
    start_all(w)
    w.exit("db", code=1)
    assert w.states() == {"db": "BACKOFF", "web": "RUNNING"}
    w.advance(1.0)
    assert w.states() == {"db": "RUNNING", "web": "RUNNING"} and len(w.pids) == 3


def test_without_requires_a_dependent_of_a_fatal_service_is_not_started():
    w = World(command("db", max_restarts=0), command("web", after=("db",)))
    w.fail_spawn["db"] = ("exec failed: no such file: /nope", False)
    start_all(w)
    assert w.state("web") == "STOPPED" and w.record("web").reason == "not started: db is FATAL"


def test_a_required_dependency_that_is_fatal_at_start_is_waited_for():
    w = World(command("db", max_restarts=0), command("web", after=("db",), requires=("db",)))
    w.fail_spawn["db"] = ("exec failed: no such file: /nope", False)
    start_all(w)
    assert w.state("web") == "WAITING"
    del w.fail_spawn["db"]
    w.feed(m.Start(("db",), fresh=True))
    assert w.states() == {"db": "RUNNING", "web": "RUNNING"}


def test_shutdown_with_requires_still_stops_in_reverse_order():
    w = shop()
    start_all(w)
    w.feed(m.Shutdown())
    assert w.state("redis") == "RUNNING"
    for name in ("web", "mailer", "cron"):
        w.exit(name)
    w.exit("redis")
    assert w.done == 0 and set(w.states().values()) == {"STOPPED"}


# -- on_fatal ------------------------------------------------------------------------

def test_on_fatal_shutdown_stops_everything_and_exits_non_zero():
    w = World(command("app", max_restarts=0), command("other"))
    w.sup.on_fatal = "shutdown"
    start_all(w)
    w.exit("app", code=1)
    assert w.state("app") == "FATAL" and w.state("other") == "STOPPING"
    assert 'on_fatal = "shutdown": app is FATAL: stopping everything' in w.lines
    w.exit("other")
    assert w.done == 1


def test_on_fatal_stay_keeps_the_rest_running():
    w = World(command("app", max_restarts=0), command("other"))
    start_all(w)
    w.exit("app", code=1)
    assert w.state("other") == "RUNNING" and w.done is None
