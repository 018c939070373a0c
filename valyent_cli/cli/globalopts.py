"""The root's options anywhere on the line, as gh takes its persistent flags.

`valyent machines show ID --no-color`, `valyent logs ID -p prod --debug`: each option of the root command
(`--profile/-p`, `--endpoint`, `--namespace`, `--allow-http`, `--debug`, `--no-color`) found after the command
words is moved, with its value, to just before the group, where the root parses it. It stays where it is when:
- it comes after `--` (the machine's own command: `machines exec ID -- ls --debug`);
- the command has an option of the same name (`auth login -p NAME`, `profiles create --endpoint URL`): its own;
- it is the value of one of the command's options (`--label --debug`);
- it falls in a command's trailing words (`machines create --image x sh --debug`, whose command is `sh --debug`,
  `machines exec ID ls --debug`): those are passed on as they are.
`--help` and `--version` are not moved: after a command, `--help` is that command's help.

The other way round, a flag of the command written before it (`valyent --json machines list`, `valyent -q fleets
list`) is moved after the command when the command has that flag (`lower`); anything else there stays an error.
"""

from __future__ import annotations

from typing import Any

#: root options that stay where they are: help is the command's own, the version only means something alone
_NOT_MOVED = frozenset({"--help", "-h", "--version", "-V"})


def options_of(command: Any) -> dict[str, bool]:
    """Each option string of ``command`` -> whether it takes a value."""
    found: dict[str, bool] = {}
    for param in getattr(command, "params", ()):
        if getattr(param, "param_type_name", "") != "option":
            continue
        takes_value = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
        for opt in (*param.opts, *getattr(param, "secondary_opts", ())):
            found[opt] = takes_value
    return found


def _split(word: str) -> tuple[str, bool]:
    """The option name of ``word`` and whether its value is attached (`--profile=prod`)."""
    if word.startswith("--") and "=" in word:
        return word.split("=", 1)[0], True
    return word, False


def _trailing(command: Any) -> bool:
    """Whether the command passes its last words on as they are (a remote command): then moving stops there."""
    settings = getattr(command, "context_settings", None) or {}
    return settings.get("allow_interspersed_args", True) is False or bool(settings.get("ignore_unknown_options"))


def _fixed_arguments(command: Any) -> int | None:
    """How many words the command's arguments take before a variadic one (None when none is variadic)."""
    count = 0
    for param in getattr(command, "params", ()):
        if getattr(param, "param_type_name", "") != "argument":
            continue
        if param.nargs < 0:
            return count
        count += param.nargs
    return None


def hoist(root: Any, args: list[str], group_at: int | None) -> tuple[list[str], int | None]:
    """``args`` with the root's options that follow the group moved to just before it (``args[group_at]``), and
    where the group is then.

    ``root`` is the click command built for this run; a line it cannot follow is returned as it is.
    """
    if group_at is None:
        return args, None
    globals_ = {opt: takes for opt, takes in options_of(root).items() if opt not in _NOT_MOVED}
    command = getattr(root, "commands", {}).get(args[group_at])
    if command is None:
        return args, group_at
    moved: list[str] = []
    kept: list[str] = []
    own = options_of(command)
    subcommands = getattr(command, "commands", None) or {}
    positionals = 0
    i = group_at + 1
    while i < len(args):
        word = args[i]
        if word == "--":
            kept.extend(args[i:])
            break
        name, attached = _split(word)
        if word.startswith("-") and word != "-":
            if name in own:
                kept.append(word)
                if own[name] and not attached and i + 1 < len(args):
                    kept.append(args[i + 1])
                    i += 1
            elif name in globals_:
                moved.append(word)
                if globals_[name] and not attached and i + 1 < len(args):
                    moved.append(args[i + 1])
                    i += 1
            else:
                kept.append(word)
            i += 1
            continue
        if word in subcommands:  # a command of the group (or of a sub-group): its options from here on
            command = subcommands[word]
            own = options_of(command)
            subcommands = getattr(command, "commands", None) or {}
            positionals = 0
            kept.append(word)
            i += 1
            continue
        positionals += 1
        fixed = _fixed_arguments(command)
        if _trailing(command) and fixed is not None and positionals > fixed:
            kept.extend(args[i:])
            break
        kept.append(word)
        i += 1
    if not moved:
        return args, group_at
    return [*args[:group_at], *moved, args[group_at], *kept], group_at + len(moved)


def lower(root: Any, args: list[str], group_at: int | None) -> list[str]:
    """``args`` with the flags before the group that are not the root's but the command's (`--json`, `-q`)
    moved to just after the command's name."""
    if group_at is None:
        return args
    roots = options_of(root)
    stray: list[int] = []
    i = 0
    while i < group_at:
        name, attached = _split(args[i])
        if name in roots:
            i += 2 if roots[name] and not attached else 1
            continue
        stray.append(i)
        i += 1
    if not stray:
        return args
    command = getattr(root, "commands", {}).get(args[group_at])
    end = group_at + 1
    subcommands = getattr(command, "commands", None) or {}
    if end < len(args) and args[end] in subcommands:
        command, end = subcommands[args[end]], end + 1
    flags = {opt for opt, takes in options_of(command).items() if not takes}
    moved = [i for i in stray if args[i] in flags]
    if not moved:
        return args
    kept = [word for i, word in enumerate(args[:end]) if i not in moved]
    return [*kept, *(args[i] for i in moved), *args[end:]]
