"""corral.Command: an external program as a service of a Python config.

    corral.Command(["redis-server", "--port", "6390"]).supervise(
        restart="always").setServiceParent(application)

It is what `command = [...]` is in TOML, with the same settings: exec'd,
never through a shell, argv[0] looked up on the PATH the program gets. It
never runs as a Python service: the loader makes it a command spec.
"""

from corral.service import Service


class Command(Service):
    def __init__(self, argv, name=None):
        super().__init__()
        self.argv = argv
        if name is not None:
            self.setName(name)
        elif isinstance(argv, (list, tuple)) and argv and isinstance(argv[0], str):
            self.setName(argv[0].rsplit("/", 1)[-1])

    def startService(self):
        raise RuntimeError("a corral.Command is exec'd by the master; it does not run in a tree")
