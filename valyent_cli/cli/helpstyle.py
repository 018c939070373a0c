"""Help in the usual Unix style: `MACHINE` and `[PATH]` in usage lines, not typer 0.29's `{MACHINE}`; no type
labels such as `<str>` or `<list[str]>` after an argument's name (its metavar and help say what it is).

Typer is pinned to 0.29.x (pyproject.toml); this replaces two methods of its Argument class, and
tests/test_sweep.py checks the help text it produces.
"""

from __future__ import annotations

from typing import Any

from typer import core


def _usage_display_name(self: Any) -> str:
    name = self.display_name_raw
    if not self.required:
        name = f"[{name}]"
    if self.nargs != 1:
        name += "..."
    return name


def _no_type(self: Any, ctx: Any) -> None:
    return None


def install() -> None:
    core.TyperArgument._usage_display_name = _usage_display_name  # type: ignore[method-assign]
    core.TyperArgument.display_type_rich = _no_type  # type: ignore[method-assign]


install()
