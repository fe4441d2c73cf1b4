"""What runs inside a forked Python worker: the bootstrap, then a runtime.

The bootstrap prepares the process (session, fds, user, env, cwd, signals)
and always ends in os._exit; the runtime (runtimes/) starts the subtree on
an event loop, reports ready, and stops it in reverse on the stop signal.
This package never imports corral.supervisor (tests/unit/test_worker_layers.py).
"""
