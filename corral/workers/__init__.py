"""What runs inside a forked Python worker: bootstrap, runner, notify.

The bootstrap prepares the process (session, fds, user, env, cwd, signals)
and always ends in os._exit; the runner starts the subtree on a fresh event
loop, reports ready, and stops it in reverse on the stop signal.
"""
