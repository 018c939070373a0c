"""The only module that prints. Data goes to stdout; progress, hints, warnings and errors go to stderr.

Modes: `--json` prints API objects verbatim (a list is a JSON array); `-q/--quiet` prints ids, one a line; otherwise
a table for people: rich on a terminal, plain aligned columns when stdout is a pipe (so `awk` and `cut` work and ids
are never cut). Colour only on a terminal, never with NO_COLOR or --no-color.
"""

from __future__ import annotations

import json as _json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

STATE_STYLES = {
    "running": "green",
    "created": "cyan",
    "preparing": "yellow",
    "starting": "yellow",
    "stopping": "yellow",
    "stopped": "bright_black",
    "destroying": "red",
    "destroyed": "red",
    "active": "green",
    "healthy": "green",
    "unhealthy": "red",
}


@dataclass(frozen=True)
class Column:
    header: str
    get: Callable[[Any], Any]
    style: Callable[[str], str | None] | None = None
    justify: str = "left"


def state_style(value: str) -> str | None:
    return STATE_STYLES.get(value)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value) or "-"
    text = str(value)
    return text if text != "" else "-"


def human_size(n: int | float | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def parse_time(value: Any) -> float | None:
    """Unix seconds from an RFC3339 string or a Unix timestamp in seconds or milliseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return value / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str):
        from datetime import datetime

        text = value.strip().replace("Z", "+00:00")
        # Python 3.11 parses at most microseconds; Go writes nanoseconds.
        if "." in text:
            head, _, rest = text.partition(".")
            digits = "".join(ch for ch in rest if ch.isdigit())
            tail = rest[len(digits):]
            text = f"{head}.{digits[:6]}{tail}"
        try:
            return datetime.fromisoformat(text).timestamp()
        except ValueError:
            return None
    return None


def ago(value: Any, now: float | None = None) -> str:
    ts = parse_time(value)
    if ts is None:
        return "-"
    delta = (now if now is not None else time.time()) - ts
    future = delta < 0
    delta = abs(delta)
    if delta < 5:
        return "just now"
    for size, unit in ((86400 * 365, "y"), (86400 * 30, "mo"), (86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if delta >= size:
            amount = int(delta // size)
            return f"in {amount}{unit}" if future else f"{amount}{unit} ago"
    return "just now"  # pragma: no cover


def clock(value: Any) -> str:
    ts = parse_time(value)
    if ts is None:
        return "-"
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Output:
    def __init__(self, *, json: bool = False, quiet: bool = False, no_color: bool = False) -> None:
        self.json = json
        self.quiet = quiet
        self.stdout_tty = sys.stdout.isatty()
        self.stderr_tty = sys.stderr.isatty()
        no_color = no_color or "NO_COLOR" in os.environ
        self.color = self.stdout_tty and not no_color
        self.err_color = self.stderr_tty and not no_color

    # -- stdout: data ---------------------------------------------------------------------------------------
    def data(self, obj: Any) -> None:
        """JSON for programs: the API objects as the API returned them."""
        sys.stdout.write(_json.dumps(obj, indent=2, ensure_ascii=False))
        sys.stdout.write("\n")
        sys.stdout.flush()

    def text(self, line: str = "") -> None:
        sys.stdout.write(line + "\n")

    def ids(self, ids: Iterable[str]) -> None:
        sys.stdout.write("".join(f"{i}\n" for i in ids))
        sys.stdout.flush()

    def table(
        self,
        rows: Sequence[Any],
        columns: Sequence[Column],
        *,
        json_data: Any = None,
        id_key: str = "id",
        empty: str | None = None,
    ) -> None:
        """Render rows: JSON array with --json, ids with -q, else a table."""
        if self.json:
            self.data(list(rows) if json_data is None else json_data)
            return
        if self.quiet:
            self.ids(str(r.get(id_key) if isinstance(r, dict) else getattr(r, id_key)) for r in rows)
            return
        if not rows:
            if empty:
                self.info(empty)
            return
        cells = [[_cell(c.get(r)) for c in columns] for r in rows]
        if self.stdout_tty:
            self._rich_table(cells, columns)
        else:
            self._plain_table(cells, columns)

    def _plain_table(self, cells: list[list[str]], columns: Sequence[Column]) -> None:
        headers = [c.header.upper() for c in columns]
        widths = [len(h) for h in headers]
        for row in cells:
            for i, value in enumerate(row):
                if len(value) > widths[i]:
                    widths[i] = len(value)
        last = len(columns) - 1
        out = []
        for row in [headers, *cells]:
            parts = []
            for i, value in enumerate(row):
                if i == last:
                    parts.append(value)
                elif columns[i].justify == "right":
                    parts.append(value.rjust(widths[i]))
                else:
                    parts.append(value.ljust(widths[i]))
            out.append("   ".join(parts).rstrip() + "\n")
        sys.stdout.write("".join(out))
        sys.stdout.flush()

    def _rich_table(self, cells: list[list[str]], columns: Sequence[Column]) -> None:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, pad_edge=False, header_style="bold" if self.color else None, show_edge=False)
        for i, c in enumerate(columns):
            is_id = c.header.lower() in ("id", "machine", "fleet", "gateway") or i == 0
            table.add_column(c.header.upper(), no_wrap=is_id, overflow="fold", justify=c.justify)  # type: ignore[arg-type]
        for row in cells:
            rendered = []
            for c, value in zip(columns, row):
                style = c.style(value) if (c.style and self.color) else None
                rendered.append(Text(value, style=style or ""))
            table.add_row(*rendered)
        Console(no_color=not self.color, highlight=False, soft_wrap=False).print(table)

    def fields(self, obj: Any, rows: Sequence[tuple[str, Any]], *, styles: dict[str, Callable[[str], str | None]] | None = None) -> None:
        """One object: JSON with --json, its id with -q, else `Key: value` lines."""
        if self.json:
            self.data(obj)
            return
        if self.quiet:
            ident = obj.get("id") if isinstance(obj, dict) else None
            if ident:
                self.ids([str(ident)])
            return
        width = max((len(k) for k, _ in rows), default=0)
        lines = []
        for key, value in rows:
            text = _cell(value)
            style = (styles or {}).get(key)
            if style and self.color and (s := style(text)):
                text = f"\x1b[{_ansi(s)}m{text}\x1b[0m"
            lines.append(f"{key + ':':<{width + 1}} {text}\n")
        sys.stdout.write("".join(lines))
        sys.stdout.flush()

    # -- stderr: everything else ----------------------------------------------------------------------------
    def _stderr(self, prefix: str, message: str, code: str) -> None:
        if self.err_color and prefix:
            prefix = f"\x1b[{code}m{prefix}\x1b[0m"
        sys.stderr.write(f"{prefix}{message}\n")
        sys.stderr.flush()

    def info(self, message: str) -> None:
        self._stderr("", message, "")

    def done(self, message: str) -> None:
        self._stderr("✓ " if self.err_color else "", message, "32")

    def warn(self, message: str) -> None:
        self._stderr("Warning: ", message, "33")

    def hint(self, message: str) -> None:
        self._stderr("Hint: ", message, "2")

    @contextmanager
    def progress(self, message: str) -> Iterator[Callable[[str], None]]:
        """A status line on stderr; on a terminal a spinner that can be updated, otherwise one line per update."""
        if not self.stderr_tty or self.json:
            last = [None]

            def update_plain(text: str) -> None:
                if text != last[0]:
                    last[0] = text
                    if not self.quiet:
                        self.info(text)

            if not self.quiet:
                self.info(message)
            yield update_plain
            return
        from rich.console import Console

        console = Console(file=sys.stderr, no_color=not self.err_color, highlight=False)
        with console.status(message) as status:

            def update(text: str) -> None:
                status.update(text)

            yield update

    def event_line(self, message: str) -> None:
        """A line of a live progress account (a machine's states and events) on stderr."""
        if not self.quiet:
            self.info(message)


_ANSI = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "bright_black": "90", "bold": "1", "dim": "2"}


def _ansi(style: str) -> str:
    return _ANSI.get(style, "0")
