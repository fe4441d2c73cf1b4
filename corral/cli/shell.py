"""`corral shell`: an interactive prompt over the client commands, as supervisorctl's.

A line is a `corral` command line without the `corral`: parsed by the same
parser (built from protocol.REGISTRY; the shell is handed its parse
function, `args.reparse`) and run by the same code (dispatch.run_command),
so there is one way to do each thing. Each command gets a fresh
connection to the master the shell found when it started (or the one its
own --socket/-c names): a `logs -f` left with Ctrl-C leaves nothing behind,
and a master started again on the same socket is simply used. Ctrl-C
stops the command, not the shell; `quit`, `exit` or Ctrl-D leaves it.

On a terminal, readline gives history (kept in
$XDG_STATE_HOME/corral/shell_history, ~/.local/state/... by default) and
TAB completes commands, their options, and the service and instance names
of the running master (asked at most once a second). Piped (`corral shell
< script`) it reads one command a line, shows no prompt and exits with the
last command's code.
"""

import os
import sys
import time

from corral.cli import completion, discovery, dispatch
from corral.cli.client import Client, ClientError, NoMaster
from corral.cli.commands import isatty
from corral.errors import EXIT_OK, EXIT_USAGE, ControlError

HELP = "an interactive prompt for the client commands, with history and completion"
PROMPT = "corral> "
LEAVE = ("quit", "exit")
BUILTINS = ("help", *LEAVE)
REFUSED = {"run": "start a master from your system's shell, not from corral shell",
           "shell": "this is corral shell already"}
NAMES_FOR = 1.0  # seconds the master's names are reused for completion
HISTORY_LENGTH = 1000
EXIT_INTERRUPTED = 130


def add(subcommands, common):
    sub = subcommands.add_parser("shell", help=HELP, description=HELP, parents=[common])
    sub.set_defaults(handler=run, client=True)


def run(client, args, out):
    client.close()  # it found the master; each command connects on its own
    shell = Shell(client.path, args.reparse, args.root_parser, out)
    if isatty(sys.stdin):
        return shell.interactive()
    return shell.script(sys.stdin)


def history_path(environ=None):
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "corral", "shell_history")


class Leave(Exception):
    """quit or exit was typed."""


class Shell:
    def __init__(self, path, reparse, parser, out):
        self.path = path
        self.reparse = reparse
        self.parser = parser
        self.out = out
        commands, self.options, self.takes_names = completion.grammar(parser)
        self.commands = sorted({*commands, *BUILTINS} - set(REFUSED))
        self._names, self._names_at = [], None
        self._matches = []

    # -- one line ------------------------------------------------------------

    def execute(self, line):
        """Run one line; its exit code. Raises Leave for quit and exit."""
        import shlex  # here: every other command of the CLI starts without it

        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:  # "No closing quotation"
            dispatch.error(f"{line.strip()}: {exc}")
            return EXIT_USAGE
        if not words:
            return EXIT_OK
        command = words[0]
        if command in LEAVE:
            raise Leave()
        if command == "help":
            return self.help(words[1:])
        if command in REFUSED:
            dispatch.error(f"{command}: {REFUSED[command]}")
            return EXIT_USAGE
        if command not in self.commands and not command.startswith("-"):
            dispatch.error(f"unknown command {command!r} (help lists them)")
            return EXIT_USAGE
        try:
            args = self.reparse(words)
        except SystemExit as exc:  # argparse said why (or printed --help)
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        if args.command is None:
            return EXIT_OK
        return dispatch.run_command(args, self.out, self.connect)

    def connect(self, args):
        if getattr(args, "socket", None) or getattr(args, "config", None):
            return discovery.connect(args)  # this line named another master
        return Client(self.path)

    def help(self, words):
        if words and words[0] not in BUILTINS:
            if words[0] in REFUSED:
                dispatch.error(f"{words[0]}: {REFUSED[words[0]]}")
                return EXIT_USAGE
            return self.execute(f"{words[0]} --help")
        subparsers = next(a for a in self.parser._actions if hasattr(a, "_choices_actions"))
        helps = {choice.dest: choice.help for choice in subparsers._choices_actions}
        helps.update({"help": "help [COMMAND]: the commands, or one command's options",
                      "quit": "leave the shell (also exit, or Ctrl-D)"})
        width = max(len(name) for name in helps)
        for name in sorted(helps):
            if name not in REFUSED and name != "exit":
                self.out.line(f"  {name.ljust(width)}  {helps[name] or ''}")
        return EXIT_OK

    # -- completion ----------------------------------------------------------

    def candidates(self, before):
        """What completes the last word of `before` (the line up to the cursor)."""
        words = before.split()
        current = words.pop() if words and not before[-1].isspace() else ""
        if not words:
            pool = self.commands
        elif words[0] == "help":
            pool = self.commands if len(words) == 1 else []
        elif current.startswith("-"):
            pool = self.options.get(words[0], [])
        elif words[0] in self.takes_names:
            pool = ["all", *self.names()]
        else:
            pool = []
        return sorted({choice for choice in pool if choice.startswith(current)})

    def names(self):
        """The master's service and instance names, asked at most once a second."""
        now = time.monotonic()
        if self._names_at is None or now - self._names_at >= NAMES_FOR:
            try:
                with Client(self.path) as client:
                    self._names = completion.names_of(client.call("status") or ())
            except (NoMaster, ClientError, ControlError, OSError):
                self._names = []
            self._names_at = now
        return self._names

    def complete(self, text, state):
        """readline's completer: the state-th match of the word being typed."""
        if state == 0:
            import readline

            self._matches = self.candidates(readline.get_line_buffer()[:readline.get_endidx()])
            if len(self._matches) == 1:  # Python's readline appends nothing itself
                self._matches[0] += " "
        return self._matches[state] if state < len(self._matches) else None

    # -- the loops -----------------------------------------------------------

    def interactive(self):
        import readline

        readline.set_completer(self.complete)
        readline.set_completer_delims(" \t\n")  # web:0 and --rolling are one word
        readline.parse_and_bind("tab: complete")
        readline.set_history_length(HISTORY_LENGTH)
        history = history_path()
        try:
            readline.read_history_file(history)
        except OSError:
            pass  # none yet, or unreadable: start without
        try:
            while True:
                try:
                    line = input(PROMPT)
                except EOFError:
                    self.out.line()
                    return EXIT_OK
                except KeyboardInterrupt:  # a fresh prompt, as a shell does
                    self.out.line()
                    continue
                try:
                    self.execute(line)
                except Leave:
                    return EXIT_OK
                except KeyboardInterrupt:
                    self.out.line()
                self.out.stream.flush()
        finally:
            self._save_history(readline, history)

    def _save_history(self, readline, history):
        try:
            os.makedirs(os.path.dirname(history), mode=0o700, exist_ok=True)
            readline.write_history_file(history)
        except OSError as exc:
            dispatch.error(f"history not saved in {history}: {exc.strerror or exc}", prefix="corral: note: ")

    def script(self, lines):
        """One command a line, no prompt; the last command's exit code."""
        code = EXIT_OK
        for line in lines:
            try:
                code = self.execute(line)
            except Leave:
                break
            except KeyboardInterrupt:
                return EXIT_INTERRUPTED
            self.out.stream.flush()
        return code
