"""`corral completion bash|zsh|fish`: a completion script, made from the command table.

The commands and their options are read from the parser, so the scripts
never fall behind it. Service and instance names come from the running
master at completion time, through the hidden `corral _names` (the
connection options already typed, -c or --socket, are passed along); with
no master answering it prints nothing and the shell offers nothing.
"""

import argparse

from corral.errors import EXIT_OK

SHELLS = ("bash", "zsh", "fish")
FILE_COMMANDS = ("run", "check", "export")
CONNECTION = ("--socket", "-c", "--config")


def add(subcommands):
    text = "print a shell completion script: eval \"$(corral completion bash)\""
    sub = subcommands.add_parser("completion", help=text, description=text)
    sub.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    sub.set_defaults(handler=print_script, client=False)
    # Hidden (no help): the names the scripts offer, from the master.
    names = subcommands.add_parser("_names", add_help=False)
    names.add_argument("--socket", default=None)
    names.add_argument("-c", "--config", default=None)
    names.set_defaults(handler=service_names, client=True, json=False, request={})


def service_names(client, args, out):
    for name in names_of(client.call("status") or ()):
        out.line(name)
    return EXIT_OK


def names_of(items):
    """The service and instance names in status rows, each once, in order."""
    seen = []
    for item in items:
        for name in (item.get("service"), item.get("name")):
            if name and name not in seen:
                seen.append(name)
    return seen


def print_script(args, out):
    out.line(script(args.shell, args.root_parser))  # parser.parse() puts it there
    return EXIT_OK


def grammar(parser):
    """(commands, {command: its options}, commands that take names) from the parser."""
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands, options = [], {}
    for name, sub in subparsers.choices.items():
        if name.startswith("_"):
            continue
        commands.append(name)
        options[name] = sorted({flag for action in sub._actions for flag in action.option_strings})
    takes_names = [name for name, sub in subparsers.choices.items() if not name.startswith("_")
                   and any(not action.option_strings and action.dest in ("names", "name")
                           for action in sub._actions)]
    return commands, options, takes_names


def script(shell, parser):
    commands, options, takes_names = grammar(parser)
    top = sorted({flag for action in parser._actions for flag in action.option_strings})
    return {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell](commands, options, takes_names, top)


def _bash(commands, options, takes_names, top):
    cases = "\n".join(f'        {name}) opts="{" ".join(flags)}";;' for name, flags in options.items())
    return f"""\
# corral completion for bash: eval "$(corral completion bash)" (in ~/.bashrc)
_corral() {{
    # Words split on blanks only: bash splits "web:0" at the colon otherwise.
    local line="${{COMP_LINE:0:COMP_POINT}}" cur="" cmd="" prev="" opts="" i
    local -a words conn
    read -ra words <<< "$line"
    [[ $line == *[[:space:]] ]] || {{ cur="${{words[-1]}}"; unset 'words[-1]'; }}
    prev="${{words[-1]}}"
    for ((i = 1; i < ${{#words[@]}}; i++)); do
        case "${{words[i]}}" in
            {"|".join(CONNECTION)}) conn+=("${{words[i]}}" "${{words[i+1]}}"); ((i++));;
            -*) ;;
            *) [[ -z $cmd ]] && cmd="${{words[i]}}";;
        esac
    done
    case "$prev" in
        {"|".join(CONNECTION)}) COMPREPLY=($(compgen -f -- "$cur")); return;;
    esac
    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "{" ".join(top)}" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "{" ".join(commands)}" -- "$cur"))
        fi
        return
    fi
    case "$cmd" in
{cases}
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi
    case "$cmd" in
        {"|".join(takes_names)})
            COMPREPLY=($(compgen -W "$(corral _names "${{conn[@]}}" 2>/dev/null)" -- "$cur"));;
        {"|".join(FILE_COMMANDS)}) COMPREPLY=($(compgen -f -- "$cur"));;
        completion) COMPREPLY=($(compgen -W "{" ".join(SHELLS)}" -- "$cur"));;
    esac
    # bash replaces only what follows the last colon of the word.
    if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
        local prefix="${{cur%"${{cur##*:}}"}}"
        COMPREPLY=("${{COMPREPLY[@]#"$prefix"}}")
    fi
}}
complete -o default -F _corral corral"""


def _zsh(commands, options, takes_names, top):
    cases = "\n".join(f"        {name}) opts=({' '.join(flags)});;" for name, flags in options.items())
    return f"""\
#compdef corral
# corral completion for zsh: eval "$(corral completion zsh)" (in ~/.zshrc, after compinit)
_corral() {{
    local cmd="" i
    local -a conn opts
    for ((i = 2; i < CURRENT; i++)); do
        case ${{words[i]}} in
            {"|".join(CONNECTION)}) conn+=(${{words[i]}} ${{words[i+1]}}); ((i++));;
            -*) ;;
            *) [[ -z $cmd ]] && cmd=${{words[i]}};;
        esac
    done
    case ${{words[CURRENT-1]}} in
        {"|".join(CONNECTION)}) _files; return;;
    esac
    if [[ -z $cmd ]]; then
        if [[ ${{words[CURRENT]}} == -* ]]; then compadd -- {" ".join(top)}
        else compadd -- {" ".join(commands)}; fi
        return
    fi
    case $cmd in
{cases}
    esac
    if [[ ${{words[CURRENT]}} == -* ]]; then compadd -- $opts; return; fi
    case $cmd in
        {"|".join(takes_names)}) compadd -- ${{(f)"$(corral _names $conn 2>/dev/null)"}};;
        {"|".join(FILE_COMMANDS)}) _files;;
        completion) compadd -- {" ".join(SHELLS)};;
    esac
}}
if [[ $funcstack[1] == _corral ]]; then _corral "$@"; else compdef _corral corral; fi"""


def _fish(commands, options, takes_names, top):
    lines = [
        "# corral completion for fish: corral completion fish > ~/.config/fish/completions/corral.fish",
        "function __corral_command",
        "    set -l skip 0",
        "    for word in (commandline -opc)[2..-1]",
        "        if test $skip = 1; set skip 0; continue; end",
        "        switch $word",
        f"            case {' '.join(CONNECTION)}; set skip 1",
        "            case '-*'",
        "            case '*'; echo $word; return",
        "        end",
        "    end",
        "end",
        "function __corral_names",
        "    set -l conn",
        "    set -l words (commandline -opc)",
        "    for i in (seq (count $words))",
        f"        if contains -- $words[$i] {' '.join(CONNECTION)}; and test $i -lt (count $words)",
        "            set conn $conn $words[$i] $words[(math $i + 1)]",
        "        end",
        "    end",
        "    corral _names $conn 2>/dev/null",
        "end",
        "complete -c corral -f",
        "complete -c corral -l socket -r -F -d 'the control socket of the master'",
        "complete -c corral -s c -l config -r -F -d 'the config the master was started with'",
        "complete -c corral -l json -d 'print JSON for tools'",
        f"complete -c corral -n 'test -z (__corral_command)' -a '{' '.join(commands)}'",
        f"complete -c corral -n 'contains -- (__corral_command) {' '.join(takes_names)}' -a '(__corral_names)'",
        f"complete -c corral -n 'contains -- (__corral_command) {' '.join(FILE_COMMANDS)}' -F",
        f"complete -c corral -n 'contains -- (__corral_command) completion' -a '{' '.join(SHELLS)}'",
    ]
    # `contains -- (__corral_command) NAME`: with no command yet the substitution
    # is empty and NAME is looked for in an empty list (test would fail loudly).
    for name, flags in options.items():
        for flag in flags:
            if flag.startswith("--") and flag not in ("--help", *CONNECTION, "--json"):
                lines.append(f"complete -c corral -n 'contains -- (__corral_command) {name}' -l {flag[2:]}")
    return "\n".join(lines)
