"""A numbered list to pick from on a terminal (a missing MACHINE or FLEET, as gh offers), on stderr.

A heading says what is listed and which row is the current one (marked `*`, and the default: Enter keeps it); the
rows are aligned whatever their number; a long list shows its first `PAGE` rows and says how to narrow it; an
answer is a number, a whole name or id, or the start of one: several matches list just those, none says what to
type (never a silent re-ask).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from valyent_cli.cli import sanitize

if TYPE_CHECKING:
    from valyent_cli.cli.output import Output

#: rows shown at once; the others are reached by number or by typing the start of a name or id
PAGE = 15

#: a machine's states, live first (the order of the list; any other state comes last)
STATE_ORDER = ("running", "starting", "restarting", "preparing", "created", "stopping", "stopped", "failed")


def live_first(state: object) -> int:
    return STATE_ORDER.index(str(state)) if str(state) in STATE_ORDER else len(STATE_ORDER)


def choose(out: Output, *, heading: str, label: str, noun: str, rows: Sequence[tuple[str, Sequence[str]]],
           current: str | None = None) -> str:
    """Show ``rows`` (the value returned, and the cells shown: the first is the name or id typed) and ask for one;
    the value of the row chosen. ``current``: the value marked `*` and taken by Enter."""
    import typer

    shown = list(rows)
    title = heading
    while True:
        _show(out, title, shown, current)
        values = [value for value, _ in shown]
        default = values.index(current) + 1 if current in values else 1
        answer = typer.prompt(label, default=str(default), err=True).strip()
        if answer.isdigit() and answer[0] != "0" and int(answer) <= len(shown):  # `01...` is an id's start
            return shown[int(answer) - 1][0]
        words = lambda row: (row[0], *(str(cell) for cell in row[1][:1]))  # noqa: E731 - the value and the name
        matches = ([row for row in rows if answer in words(row)]
                   or [row for row in rows if answer and any(w.startswith(answer) for w in words(row))])
        if len(matches) == 1:
            return matches[0][0]
        if matches:
            shown, title = matches, f"{len(matches)} {noun}s start with {answer!r}:"
            continue
        out.note(sanitize.block(f"No {noun} matches {answer!r}: type a number from 1 to {len(shown)}, or the start "
                                f"of a name or id."))


def _show(out: Output, title: str, rows: list[tuple[str, Sequence[str]]], current: str | None) -> None:
    cells = [[sanitize.line(str(c)) for c in row_cells] for _, row_cells in rows[:PAGE]]
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(max(map(len, cells), default=0))]
    number_width = len(str(len(rows)))
    mark = current is not None and any(value == current for value, _ in rows)
    lines = [sanitize.line(title)]
    for number, ((value, _), row) in enumerate(zip(rows, cells), 1):
        star = ("* " if value == current else "  ") if mark else ""
        text = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        lines.append(f"  {number:>{number_width}}) {star}{text}")
    if len(rows) > PAGE:
        lines.append(f"  ... and {len(rows) - PAGE} more: type a number, or the start of a name or id to narrow the list")
    out.note("\n".join(lines))
