"""The root command: global options, the command groups, and the one error handler."""

# No `from __future__ import annotations` here: typer reads the annotations of the commands it builds on every
# run, and each string annotation costs a compile() (~50 µs); real ones cost nothing then (issue 16).
import os
import sys
from collections.abc import Collection
from typing import Annotated, Any

import typer

from valyent_cli import __version__
from valyent_cli.cli import complete, fastparams, globalopts, helpstyle
from valyent_cli.cli.exits import EXIT_CODES_HELP, Exit
from valyent_cli.groups import ALIASES, GROUPS  # the one list of groups (re-exported here for the tools that read it)

HELP = f"""The command line for Valyent Cloud and self-hosted Ravel: fleets of micro-VM machines, their gateways, files,
logs and commands.

Start offline with the local sandbox: `valyent local start`, then `valyent machines create --image nginx`.

The options below go before or after the command: `valyent machines list -p prod --debug`. Short forms, as in
docker and gh: `ls` for list and `rm` for delete (`valyent machines rm ID`), `valyent machines logs` for `valyent logs`.

{EXIT_CODES_HELP}
"""


def _new_root() -> typer.Typer:
    return typer.Typer(
        name="valyent",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": helpstyle.MAX_WIDTH},
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
    )


app = _new_root()


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"valyent {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", metavar="PROFILE", help="Profile to use (default: the active one; env VALYENT_PROFILE).",
                                  autocompletion=complete.profiles)
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", metavar="URL", help="API base URL (env VALYENT_API_URL).")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", metavar="NAMESPACE", help="Namespace sent with every request (env VALYENT_NAMESPACE).",
                                  autocompletion=complete.namespaces)
    ] = None,
    allow_http: Annotated[
        bool | None,
        typer.Option("--allow-http", help="Allow sending the token over plain http to a host that is not loopback.",
                     show_default=False),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show each HTTP exchange (token redacted) and tracebacks, on stderr.")
    ] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="Never use colour (also: NO_COLOR).")] = False,
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    from valyent_cli.cli.context import AppContext

    ctx.obj = AppContext(profile=profile, endpoint=endpoint, namespace=namespace, allow_http=allow_http, debug=debug,
                         no_color=no_color)


_registered: set[str] = set()
# Global options that take a value: a group name after one of them is its value, not the group.
_VALUE_OPTIONS = ("--profile", "-p", "--endpoint", "--namespace")


def register(only: str | None = None) -> typer.Typer:
    """Add the command groups to the root app (only ``only`` when given) and return it.

    A run needs only the group it names: importing and building the other groups' commands would cost start-up
    time for nothing. Root help, a typo or no group at all get every group.
    """
    import importlib

    for name in GROUPS if only is None else (only,):
        if name not in _registered:
            _registered.add(name)
            app.add_typer(importlib.import_module(f"valyent_cli.commands.{name}").app)
    # Whatever was registered first, help and the generated docs list the groups in one order.
    app.registered_groups.sort(key=lambda info: GROUPS.index(info.typer_instance.info.name))
    return app


def full_app() -> typer.Typer:
    """The root app with every group: for the docs generator and tests that walk the command tree."""
    helpstyle.install()
    return register()


def _overview() -> typer.Typer:
    """The root app with each group's name and help but none of its commands: enough for root help and for
    `valyent <typo>`, without building the ~90 commands' parameters (most of the time of `valyent --help`)."""
    import importlib

    overview = _new_root()
    overview.callback()(root)
    for name in GROUPS:
        info = importlib.import_module(f"valyent_cli.commands.{name}").app.info
        overview.add_typer(typer.Typer(name=name, help=info.help, short_help=info.short_help))
    return overview


def _group_at(args: list[str], names: Collection[str] = GROUPS) -> int | None:
    """Where the command group is on the line (the first word that is not a global option or its value), when it
    is one of ``names``."""
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg in _VALUE_OPTIONS:
            skip = True
            continue
        if arg.startswith("-"):
            continue
        return i if arg in names else None
    return None


def _unalias(args: list[str], at: int | None) -> list[str]:
    """``args`` with a command's alias (`machines rm`, `machines logs`: groups.ALIASES) replaced by what it stands
    for; the command word is the first after the group that is not an option."""
    if at is None or args[at] not in ALIASES:
        return args
    command = _group_at(args[at + 1 :], ALIASES[args[at]])
    if command is None:
        return args
    command += at + 1
    return [*args[:at], *ALIASES[args[at]][args[command]], *args[at + 1 : command], *args[command + 1 :]]


def _one_command(args: list[str], at: int | None = None) -> typer.Typer | None:
    """The root app whose group (``args[at]``, found when not given) holds only the command named on the line
    (`valyent machines list`), or None.

    Typer builds the parameters of every command of a group from its function's signature before it parses the
    line: ~16 ms for the 14 commands of `machines`, ~5 ms for `fleets`, where the one that runs takes ~1 ms. The
    group, copied, keeps only that command, so a run builds what it uses; the group's help, an option before the
    command (`machines --help`), a word that is no command of it (a typo, which must list the commands) and a group
    with sub-groups get the whole group (`register`). The groups' own apps are left as they are (`full_app`).
    """
    if at is None:
        at = _group_at(args)
    if at is None or at + 1 >= len(args) or args[at + 1].startswith("-"):
        return None
    import copy
    import importlib

    group = importlib.import_module(f"valyent_cli.commands.{args[at]}").app
    chosen = [info for info in group.registered_commands if info.name == args[at + 1]]
    if not chosen or group.registered_groups:
        return None
    lean = copy.copy(group)
    lean.registered_commands = chosen
    one = _new_root()
    one.callback()(root)
    one.add_typer(lean)
    return one


#: arguments a terminal picker can fill in when they are missing: (parameter name, what to list)
_PICKABLE = {"machine": "machine", "machines": "machine", "fleet": "fleet", "fleets": "fleet"}


def _pick_missing(exc: BaseException, args: list[str]) -> list[str] | None:
    """A missing MACHINE or FLEET argument on a terminal: offer a list to pick from (as gh does), and return the
    arguments with the choice in place; None when there is nothing to offer (no terminal: today's error stands)."""
    param = getattr(exc, "param", None)
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ != "MissingParameter" or param is None or ctx is None:
        return None
    if getattr(param, "param_type_name", "") != "argument":
        return None
    from valyent_cli.cli import resolve

    if not resolve.interactive() or ctx.obj is None:
        return None
    path = ctx.command_path.split()[1:]  # the words after `valyent`: group and command
    at = next((i + len(path) for i in range(len(args)) if args[i : i + len(path)] == path), None)
    if at is None:
        return None
    kind = _PICKABLE.get(str(getattr(param, "name", "")))
    if kind is None:
        return None
    chosen = resolve.pick(ctx.obj, kind, _flag_value(args, "--fleet"))
    return None if chosen is None else [*args[:at], chosen, *args[at:]]


def _fill_before_dashes(command: Any, args: list[str], at: int | None) -> list[str]:
    """`machines exec -- ls -la`: no MACHINE before `--`, so `ls` would be taken for it. On a terminal, offer the
    list to pick from and put the choice before `--`; otherwise say what is missing (exit 2)."""
    if at is None or at + 1 >= len(args):
        group = None
    else:
        group = command.commands.get(args[at])
    leaf = getattr(group, "commands", {}).get(args[at + 1]) if group is not None else None
    kind = _taken_by_dashes(leaf, args, at + 2) if leaf is not None and at is not None else None
    if kind is None:
        return args
    from valyent_cli.cli import resolve
    from valyent_cli.cli.errors import UsageError

    name = kind.upper()
    if not resolve.interactive():
        raise UsageError(f"missing {name} before `--`: valyent {args[at]} {args[at + 1]} {name} -- COMMAND...")
    from valyent_cli.cli.context import AppContext

    with command.make_context("valyent", args[:at], resilient_parsing=True) as root:
        options = {k: root.params.get(k) for k in ("profile", "endpoint", "namespace", "allow_http", "debug", "no_color")}
    chosen = resolve.pick(AppContext(**options), kind, _flag_value(args, "--fleet"))
    if chosen is None:
        raise UsageError(f"missing {name} before `--`, and there is none to pick from")
    dashes = args.index("--", at + 2)
    return [*args[:dashes], chosen, *args[dashes:]]


def _taken_by_dashes(command: object, args: list[str], at: int) -> str | None:
    """What the command's first argument lists when the line gives it no word before `--` (so the first word
    after `--` was taken for it), else None."""
    first = next((p for p in getattr(command, "params", ()) if getattr(p, "param_type_name", "") == "argument"), None)
    kind = _PICKABLE.get(str(getattr(first, "name", "")))
    if kind is None or "--" not in args[at:]:
        return None
    options = globalopts.options_of(command)
    words = args[at : args.index("--", at)]
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("-"):
            return None  # a word for the argument: it was given
        i += 2 if options.get(word) else 1
    return kind


def _flag_value(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map every error a user can cause to a message and a documented exit code."""
    from valyent_cli.cli.errors import handle

    args = sys.argv[1:] if argv is None else list(argv)
    # before the command is known, `--debug` anywhere but in a machine's own command (after `--`) counts
    debug = "--debug" in args[: args.index("--") if "--" in args else None] or os.environ.get("VALYENT_DEBUG") == "1"
    fastparams.install()
    helpstyle.install()
    at = _group_at(args)
    args = _unalias(args, at)
    at = _group_at(args)
    root_app = _overview() if at is None else (_one_command(args, at) or register(args[at]))
    from valyent_cli.cli.signals import ended_as_exceptions

    try:
        # The click-level command, run without typer's standalone wrapper: that wrapper turns a Ctrl-C into a
        # silent exit 130 and a closed pipe (`valyent ... | head`) into exit 1, before this handler could say or
        # decide anything.
        command = typer.main.get_command(root_app)
        args = globalopts.lower(command, args, at)
        at = _group_at(args)
        args, at = globalopts.hoist(command, args, at)
        debug = "--debug" in args[:at] or os.environ.get("VALYENT_DEBUG") == "1"
        args = _fill_before_dashes(command, args, at)
        with ended_as_exceptions(), command.make_context("valyent", args) as ctx:
            code = command.invoke(ctx)
    except BaseException as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        try:
            picked = _pick_missing(exc, args)
        except BaseException as again:  # noqa: BLE001 - the picker's own errors (Ctrl-C, the API) are reported too
            exc, picked = again, None
        if picked is not None:
            main(picked)  # the same command, with what was picked
            return
        code = handle(exc, debug=debug)
    if isinstance(code, int):
        sys.exit(code)
    sys.exit(Exit.OK)
