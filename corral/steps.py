"""One OS step, named in its error: "Unable to set user nobody: Operation not permitted".

python-daemon's way: multi-step OS work (the worker's bootstrap, the
daemon's detach, a command's privilege drop) is a flat list of one-verb
steps, and an OSError in one becomes the caller's error class with the
step's name. Imports nothing, so that the worker side, the master side and
a forked child can all use it.
"""


def step(error, description, action, *args):
    """Return action(*args); an OSError raises error("Unable to DESCRIPTION: why")."""
    try:
        return action(*args)
    except OSError as exc:
        raise error(f"Unable to {description}: {exc.strerror or exc}") from exc
