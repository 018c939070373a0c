"""The command tree as data: commands, their help, options and arguments, and how each value completes.

Built from the click-level tree that Typer makes (`typer.main.get_command(app)`); used at run time by
`valyent completion SHELL` (cli/completion_scripts.py) and in development by `devtools/gendocs.py` (man pages).
Which parameters complete from the API is learnt by asking each completer with a context marked `INTROSPECT`
in its `meta` (see valyent_cli.cli.complete): no request is made and no global switch is flipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

PROG = "valyent"

# -- the command tree ---------------------------------------------------------------------------------------------


@dataclass
class Values:
    """How the value of an option or argument completes: files, fixed choices, or from the program."""

    kind: str  # "files" | "choices" | "dynamic" | "none"
    choices: tuple[str, ...] = ()
    dynamic: str = ""  # fleet, machine, gateway, profile
    suggested: bool = False  # the choices are usual values, not the only ones (the server's CPU templates)


@dataclass
class Opt:
    names: list[str]  # e.g. ["-i", "--image"]
    secondary: list[str]  # e.g. ["--no-wait"] for --wait/--no-wait
    takes_value: bool
    multiple: bool
    required: bool
    help: str
    metavar: str
    default: str  # "" when there is none worth showing
    envvar: str
    values: Values


@dataclass
class Arg:
    name: str  # metavar, e.g. MACHINE
    required: bool
    variadic: bool
    help: str
    default: str
    values: Values


@dataclass
class Node:
    path: list[str]  # ["machines", "create"]; [] for the root
    help: str
    short_help: str
    options: list[Opt]
    args: list[Arg]
    children: list[Node] = field(default_factory=list)

    @property
    def is_group(self) -> bool:
        return bool(self.children)

    @property
    def key(self) -> str:
        return " ".join(self.path)

    @property
    def page(self) -> str:
        return "-".join([PROG, *self.path])

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


def live_tree() -> Node:
    """The command tree of the installed program, as it is now."""
    import typer.main

    from valyent_cli.main import full_app

    app = full_app()

    root = typer.main.get_command(app)
    return _node(root, [], None)


def _node(cmd: Any, path: list[str], parent: Any) -> Node:
    import typer

    settings = {**(cmd.context_settings or {}), "resilient_parsing": True}
    ctx = typer.Context(cmd, info_name=path[-1] if path else PROG, parent=parent, **settings)
    if parent is None:
        from valyent_cli.cli.complete import INTROSPECT

        ctx.meta[INTROSPECT] = True  # shared by every child context
    options: list[Opt] = []
    args: list[Arg] = []
    for param in cmd.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            args.append(_arg(param, ctx))
        else:
            options.append(_opt(param, ctx))
    help_ = _clean(cmd.help or "")
    node = Node(path, help_, _first_sentence(help_), options, args)
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        if not sub.hidden:
            node.children.append(_node(sub, [*path, name], ctx))
    return node


def _clean(text: str) -> str:
    import inspect

    return inspect.cleandoc(text).strip()


def _first_sentence(text: str) -> str:
    first = text.split("\n\n", 1)[0].replace("\n", " ").strip()
    return first


def _values(param: Any, ctx: Any) -> Values:
    from valyent_cli.cli import complete

    try:
        items = param.shell_complete(ctx, "")
    except Exception:  # noqa: BLE001 - a parameter that cannot say is completed as files
        items = []
    if any(item.value == complete.DYNAMIC for item in items):
        kind = next(item.help for item in items if item.value == complete.DYNAMIC)
        return Values("dynamic", dynamic=str(kind))
    if items and all(getattr(item, "type", "plain") == "plain" for item in items):
        return Values("choices", tuple(str(item.value) for item in items),
                      suggested=all(item.help == complete.SUGGESTED for item in items))
    # Without a completer, only what names a local file completes as files: an image or a port would not.
    words = set(re.split(r"[_\W]+", f"{param.name} {param.metavar or ''}".lower()))
    on_machine = "on the machine" in (param.help or "")
    if items or (words & _FILE_WORDS and not on_machine):
        return Values("files")
    return Values("none")


_FILE_WORDS = {"file", "path", "config", "dir", "directory", "local"}


def _opt(param: Any, ctx: Any) -> Opt:
    takes_value = not param.is_flag and not param.count
    names = sorted(param.opts, key=lambda n: (n.startswith("--"), n))
    default = ""
    if param.is_flag and param.secondary_opts:
        default = (param.opts[0] if param.default else param.secondary_opts[0]) if param.default is not None else ""
    elif isinstance(param.show_default, str):
        default = param.show_default
    elif takes_value:
        value = param.get_default(ctx, call=False)
        if value not in (None, (), []) and not callable(value):
            default = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    long_name = next((n for n in names if n.startswith("--")), names[0])
    metavar = param.metavar or long_name.lstrip("-").replace("-", "_").upper()
    envvar = param.envvar if isinstance(param.envvar, str) else ", ".join(param.envvar or ())
    return Opt(
        names=names,
        secondary=list(param.secondary_opts),
        takes_value=takes_value,
        multiple=bool(param.multiple),
        required=bool(param.required),
        help=_clean(param.help or ""),
        metavar=metavar if takes_value else "",
        default=default,
        envvar=envvar,
        values=_values(param, ctx) if takes_value else Values("none"),
    )


def _arg(param: Any, ctx: Any) -> Arg:
    value = param.get_default(ctx, call=False)
    default = "" if value in (None, (), []) or callable(value) else str(value)
    return Arg(
        name=(param.metavar or param.name).upper(),
        required=bool(param.required),
        variadic=param.nargs == -1,
        help=_clean(param.help or ""),
        default=default,
        values=_values(param, ctx),
    )
