"""Help in the usual Unix style: `MACHINE` and `[PATH]` in usage lines, not typer 0.29's `{MACHINE}`; no type
labels such as `<str>` or `<list[str]>` after an argument's name (its metavar and help say what it is).

Typer is pinned to 0.29.x (pyproject.toml); `install()`, called by main like fastparams, replaces two methods of
its Argument class when it has them, and tests/cli/test_rough_edges.py checks the help text it produces.
"""

from __future__ import annotations

from typing import Any

installed = False


def install() -> bool:
    """Replace the two methods when typer's Argument class has them; otherwise leave typer's own help (another
    typer version costs the help's style, never a command). Returns whether it installed."""
    global installed
    try:
        from typer import core
    except ImportError:
        return False
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
