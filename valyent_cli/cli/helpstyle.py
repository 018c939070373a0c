"""Help in the usual Unix style: `MACHINE` and `[PATH]` in usage lines, not typer 0.29's `{MACHINE}`; no type
labels such as `<str>` or `<list[str]>` after an argument's name (its metavar and help say what it is); example
commands never broken in the middle (`keep_examples`): an indented block of the help is printed as written, and an
`Example: CMD` too long for the line puts CMD on a line of its own. How wide help is: the terminal's width, up to
`MAX_WIDTH` (main.py's root context settings).

Typer is pinned to 0.29.x (pyproject.toml); `install()`, called by main like fastparams, replaces two methods of
its Argument class when it has them, and tests/cli/test_rough_edges.py checks the help text it produces.
"""

from __future__ import annotations

from typing import Any

installed = False

#: help is as wide as the terminal, up to this many columns (click's default stops at 80)
MAX_WIDTH = 120


def keep_examples(text: str, width: int) -> str:
    """``text`` (a command's help, cleaned) with its example commands marked for click to print as written: an
    indented paragraph as it is, an `Example: CMD` paragraph wider than ``width`` as `Example:` then CMD."""
    out: list[str] = []
    for para in text.split("\n\n"):
        lines = [line for line in para.split("\n") if line.strip()]
        head, sep, rest = para.partition(": ")
        if lines and all(line[:1] in (" ", "\t") for line in lines):
            out.append("\b\n" + para)
        elif sep and head in ("Example", "Examples") and (len(para) > width or "\n" in rest):
            out += [head + ":", "\b\n" + "\n".join("  " + line.strip() for line in rest.split("\n"))]
        else:
            out.append(para)
    return "\n\n".join(out)


def install() -> bool:
    """Replace the two methods when typer's Argument class has them; otherwise leave typer's own help (another
    typer version costs the help's style, never a command). Returns whether it installed."""
    global installed
    try:
        from typer import core
    except ImportError:
        return False
    _install_examples()
    argument = getattr(core, "TyperArgument", None)
    original = getattr(argument, "_usage_display_name", None)
    if installed or not callable(original) or not callable(getattr(argument, "display_type_rich", None)):
        return installed

    def usage_display_name(self: Any) -> str:
        name = getattr(self, "display_name_raw", None)
        if not isinstance(name, str):
            return original(self)
        if not self.required:
            name = f"[{name}]"
        if self.nargs != 1:
            name += "..."
        return name

    def no_type(self: Any, ctx: Any) -> None:
        return None

    argument._usage_display_name = usage_display_name
    argument.display_type_rich = no_type
    installed = True
    return True


def _install_examples() -> None:
    """Wrap click's `format_help_text` (the one typer's commands and groups use without rich markup) so that the
    help's examples go through `keep_examples`; left alone when click's classes are not as expected."""
    try:
        from typer._click import core as click_core
    except ImportError:
        return
    command = getattr(click_core, "Command", None)
    original = getattr(command, "format_help_text", None)
    if not callable(original) or getattr(original, "_keeps_examples", False):
        return

    def format_help_text(self: Any, ctx: Any, formatter: Any) -> None:
        help_ = getattr(self, "help", None)
        if not isinstance(help_, str) or getattr(self, "deprecated", False):
            original(self, ctx, formatter)
            return
        import inspect

        text = inspect.cleandoc(help_).partition("\f")[0]
        if text:
            formatter.write_paragraph()
            with formatter.indentation():
                width = (formatter.width or 80) - formatter.current_indent
                formatter.write_text(keep_examples(text, width))

    format_help_text._keeps_examples = True  # type: ignore[attr-defined]
    command.format_help_text = format_help_text
