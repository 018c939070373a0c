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
from typing import Any

from valyent_cli.cli import sanitize

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


class Column:
    """One column of a table: its header, how to get its value from a row, its style, justification and `drop`.

    A plain class: a dataclass costs ~0.5 ms to make at import, and every command imports this module.
    """

    __slots__ = ("header", "get", "style", "justify", "drop", "wrap")

    def __init__(self, header: str, get: Callable[[Any], Any], style: Callable[[str], str | None] | None = None,
                 justify: str = "left", drop: int = 0, wrap: bool = False) -> None:
        self.header = header
        self.get = get
        self.style = style
        self.justify = justify
        #: on a terminal too narrow for every column, the columns with the highest `drop` are left out first
        #: (0: never), before any other is shortened
        self.drop = drop
        #: a long value goes on over more lines of its cell instead of being cut (text in words: the last column)
        self.wrap = wrap

    def __repr__(self) -> str:
        return f"Column({self.header!r}, justify={self.justify!r}, drop={self.drop})"


def _utf8(stream: Any) -> bool:
    """Whether text written to ``stream`` is encoded as UTF-8 (so its buffer may take UTF-8 bytes directly)."""
    encoding = getattr(stream, "encoding", None)
    return isinstance(encoding, str) and encoding.lower().replace("-", "").replace("_", "") == "utf8"


def _write_line(buffer: Any, data: bytes) -> None:
    """``data`` and a newline to stdout's byte buffer, after what is pending in stdout's text layer; written apart,
    not as ``data + b"\\n"`` (a copy of megabytes)."""
    sys.stdout.flush()
    buffer.write(data)
    buffer.write(b"\n")
    buffer.flush()


def _one_json_line(body: bytes) -> bytes | None:
    """``body`` without its trailing whitespace when it is JSON as ``data`` prints it piped: an array or object
    from the first byte (so UTF-8: a byte-order mark or UTF-16 starts otherwise) on one line, whose first member
    has no space after its colon (compact, as Go's encoder and this CLI write it; a pretty-printer or Python's
    default separators show there already); else None, and the value is encoded again. The body has been parsed
    already: this only decides how it looks."""
    line = body.rstrip(b" \t\r\n")
    if line[:1] not in (b"[", b"{") or b"\n" in line or b"\r" in line:
        return None
    head = line[:4096]
    colon = head.find(b'":')
    if colon == -1 and len(line) > 2:
        return None
    if colon != -1 and head[colon + 2:colon + 3] == b" ":
        return None
    return line


def state_style(value: str) -> str | None:
    return STATE_STYLES.get(value)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return _clean_line(" ".join(str(v) for v in value)) or "-"
    text = _clean_line(str(value))
    return text if text != "" else "-"


_clean_line = sanitize.line


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
    def data(self, obj: Any, *, body: bytes | None = None) -> None:
        """JSON for programs: the API objects as the API returned them.

        Indented on a terminal; compact when piped (as gh does): the same keys and values, and the indenting
        encoder is pure Python, five times slower on a list of thousands of machines. ``body``: ``obj`` as the
        server sent it (read, then checked); piped, a body that is already compact JSON on one line is written
        as it came instead of being encoded again.
        """
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None and not _utf8(sys.stdout):
            buffer = None  # stdout takes UTF-8 bytes as they are only when it encodes text as UTF-8
        if body is not None and buffer is not None and not self.stdout_tty:
            line = _one_json_line(body)
            if line is not None:
                _write_line(buffer, line)
                return
        indent, separators = (2, None) if self.stdout_tty else (None, (",", ":"))
        text = _json.dumps(obj, indent=indent, separators=separators, ensure_ascii=False)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates (bytes of exec output that are not UTF-8): as JSON escapes
            text = _json.dumps(obj, indent=indent, separators=separators, ensure_ascii=True)
            data = None
        if data is not None and buffer is not None:
            # the bytes just made, written as they are: encoding a list of thousands of machines again costs more
            _write_line(buffer, data)
            return
        sys.stdout.write(text)
        sys.stdout.write("\n")
        sys.stdout.flush()

    def text(self, line: str = "") -> None:
        sys.stdout.write(line + "\n")

    def ids(self, ids: Iterable[str]) -> None:
        if self.stdout_tty:  # names from a server, shown on a terminal: control sequences made inert
            ids = [_clean_line(i) for i in ids]
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

        from valyent_cli.cli import tablefit
        from rich.table import Table
        from rich.text import Text

        console = Console(no_color=not self.color, highlight=False, soft_wrap=False)
        widths = tablefit.fit(columns, cells, console.width)
        while tablefit.natural_width(columns, cells) > console.width and any(c.drop for c in columns):
            # Too wide: leave out the least useful column before shortening the values people came for.
            gone = max(range(len(columns)), key=lambda i: columns[i].drop)
            columns = [c for i, c in enumerate(columns) if i != gone]
            cells = [[v for i, v in enumerate(row) if i != gone] for row in cells]
            widths = tablefit.fit(columns, cells, console.width)
        # Every column gets the width tablefit.fit chose; the console is made wide enough for them, so rich never squeezes
        # a column away: on a terminal too narrow even for the ids, lines wrap as plain text would.
        console = Console(no_color=not self.color, highlight=False, soft_wrap=False,
                          width=max(console.width, sum(widths) + tablefit.GAP * (len(widths) - 1)))
        table = Table(box=None, pad_edge=False, header_style="bold" if self.color else None, show_edge=False)
        for c, width in zip(columns, widths):
            table.add_column(c.header.upper(), no_wrap=not c.wrap, overflow="fold" if c.wrap else "ellipsis",
                             justify=c.justify, min_width=width, max_width=width)  # type: ignore[arg-type]
        for row in cells:
            rendered = []
            for c, value in zip(columns, row):
                style = c.style(value) if (c.style and self.color) else None
                rendered.append(Text(value, style=style or ""))
            table.add_row(*rendered)
        console.print(table)

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
        message = sanitize.block(message)
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
        """A status line on stderr: on a terminal a spinner that can be updated, otherwise the message once."""
        if not self.stderr_tty:
            # Off a terminal a spinner's updates would only repeat what the caller prints line by line.
            if not self.quiet:
                self.info(message)
            yield lambda text: None
            return
        from rich.console import Console

        from rich.markup import escape

        console = Console(file=sys.stderr, no_color=not self.err_color, highlight=False)
        with console.status(escape(_clean_line(message))) as status:

            def update(text: str) -> None:
                status.update(escape(_clean_line(text)))

            yield update

    def step(self, message: str) -> None:
        """One line of a long operation's progress on stderr, with the time (a deploy in CI)."""
        self._stderr(time.strftime("%H:%M:%S ", time.localtime()), message, "2")

    @contextmanager
    def live(self) -> Iterator[Callable[[Any], None]]:
        """A live view on stderr (a terminal only): ``update(renderable)`` redraws it; it stays when done."""
        from rich.console import Console
        from rich.live import Live

        console = Console(file=sys.stderr, no_color=not self.err_color, highlight=False)
        with Live(console=console, auto_refresh=False, transient=False) as view:
            yield lambda renderable: view.update(renderable, refresh=True)

    def note(self, message: str) -> None:
        """A line of the CLI's own text on stderr, as it is (no prefix, no colour, nothing made inert)."""
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    def error(self, message: str, hint: str | None = None) -> None:
        """``Error: message`` (and ``Hint: hint``) on stderr; server text in them is made inert."""
        message, hint = sanitize.block(message), (sanitize.block(hint) if hint else hint)
        sys.stderr.write(f"Error: {message}\n")
        if hint:
            sys.stderr.write(f"Hint: {hint}\n")
        sys.stderr.flush()

    def traceback(self, exc: BaseException) -> None:
        """The traceback of ``exc`` on stderr (--debug)."""
        import traceback

        traceback.print_exception(exc, file=sys.stderr)

    def debug(self, message: str) -> None:
        """A --debug line on stderr."""
        sys.stderr.write(f"[debug] {message}\n")
        sys.stderr.flush()

    def build_log(self, line: str, *, to_stderr: bool, flush: bool = True) -> None:
        """A line of a build's log, as it came to a pipe; on a terminal with :func:`sanitize.output` (colours
        kept, every other control sequence escaped), as log lines are: a Dockerfile's `RUN` prints what it likes."""
        stream = sys.stderr if to_stderr else sys.stdout
        stream.write((sanitize.output(line) if stream.isatty() else line) + "\n")
        if flush:
            stream.flush()

    def raw_stdout(self, text: str, *, flush: bool = True) -> None:
        """Text on stdout exactly as given (a completion script, completion candidates)."""
        sys.stdout.write(text)
        if flush:
            sys.stdout.flush()

    def log_message(self, message: str, *, to_stderr: bool) -> None:
        """A machine's log line as it arrives (`valyent run`): its stderr on stderr, the rest on stdout."""
        stream = sys.stderr if to_stderr else sys.stdout
        stream.write(message + "\n")
        stream.flush()

    def command_output(self, stdout: str, stderr: str) -> None:
        """What a command run in a machine wrote (`machines exec`), each on its stream, as the bytes it wrote:
        bytes that were not UTF-8 arrive as lone surrogates (the sandbox sends them so) and are written back as
        those bytes, never as U+FFFD. On a terminal, :func:`sanitize.output` applies."""
        for stream, text in ((sys.stdout, stdout), (sys.stderr, stderr)):
            if stream.isatty():
                text = sanitize.output(text)
            try:
                data = text.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:  # a surrogate that stands for no byte (a JSON "\ud800"): shown escaped
                data = text.encode("utf-8", "backslashreplace")
            stream.flush()
            stream.buffer.write(data)
            stream.buffer.flush()

    def event_line(self, message: str) -> None:
        """A line of a live progress account (a machine's states and events) on stderr."""
        if not self.quiet:
            self.info(message)


_ANSI = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "bright_black": "90", "bold": "1", "dim": "2"}


def _ansi(style: str) -> str:
    return _ANSI.get(style, "0")


# -- log lines: the hot path of `valyent logs` -------------------------------------------------------------------
# Hundreds of thousands of lines go through here, so no rich and no datetime per line: strings are built with
# f-strings, the `YYYY-MM-DDTHH:MM:SS` part is cached per second, and lines are written in batches as UTF-8 bytes.

#: how many characters of a machine's id prefix its lines in a fleet's logs (docker shows 12 of a container's id)
SHORT_ID = 12
#: machine prefix colours on a terminal, assigned in order of appearance
_MACHINE_COLORS = ("36", "35", "34", "32", "96", "95", "94", "92", "33", "93")


class LogFormatter:
    """``TIME [MACHINE] message`` lines; TIME is ISO-8601 UTC with milliseconds (``2024-05-01T12:00:00.123Z``).

    With ``color`` (stdout a terminal, colour allowed): the time dim, each machine in its own colour, and the
    messages a machine wrote to stderr highlighted.
    """

    def __init__(self, *, color: bool = False, prefix: bool = False, terminal: bool | None = None) -> None:
        self.color = color
        self.prefix = prefix
        # On a terminal a message keeps its colours and nothing else (cli/sanitize.py); a pipe gets it as written.
        self.terminal = sys.stdout.isatty() if terminal is None else terminal
        self._second: int | None = None
        self._second_text = ""
        self._last_ts: float | None = -1.0
        self._last_text = ""
        self._labels: dict[str, str] = {}
        self._known: set[str] = set()
        self._shorts: dict[str, str] = {}
        self._width = 0

    def time(self, ts: float | None) -> str:
        if ts == self._last_ts:  # bursts share a millisecond: one string for all of them
            return self._last_text
        if ts is None:
            return "-" + " " * 23
        self._last_ts = ts
        second = int(ts // 1)
        millis = int(round((ts - second) * 1000))
        if millis >= 1000:  # a float a hair below the next second
            second, millis = second + 1, millis - 1000
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self._last_text = f"{self._second_text}.{millis:03d}Z"
        return self._last_text

    def set_machines(self, machine_ids: Iterable[str]) -> None:
        """Declare the machines up front so that prefixes align, colours are stable and each machine's short id is
        unique among them."""
        machine_ids = list(machine_ids)
        self._known.update(machine_ids)
        for machine_id in machine_ids:
            self._label(machine_id)

    def short(self, machine_id: str) -> str:
        """The machine's id as the prefix of its lines: its first `SHORT_ID` characters (as docker shows ids), more
        when another machine declared shares them."""
        size = SHORT_ID
        while size < len(machine_id) and any(
                other != machine_id and other[:size] == machine_id[:size] for other in self._known):
            size += 1
        return machine_id[:size]

    def _label(self, machine_id: str) -> str:
        label = self._labels.get(machine_id)
        if label is None:
            short = self._shorts[machine_id] = self.short(machine_id)
            self._known.add(machine_id)
            self._width = max(self._width, len(short))
            shown = _clean_line(short) if self.terminal else short
            if self.color:
                color = _MACHINE_COLORS[len(self._labels) % len(_MACHINE_COLORS)]
                label = f"\x1b[{color}m{shown}\x1b[0m"
            else:
                label = shown
            self._labels[machine_id] = label
        return label

    def line(self, entry: dict[str, Any], ts: float | None, machine_id: str | None = None) -> str:
        """One entry as a line ending in a newline; ``ts`` is the entry's time in Unix seconds."""
        message = entry.get("message")
        if message is None:
            message = ""
        elif not isinstance(message, str):
            message = str(message)
        if message.endswith("\n"):
            message = message.rstrip("\r\n")
        if self.terminal:
            message = sanitize.output(message)
        stamp = self.time(ts)
        if not self.color:
            if self.prefix and machine_id is not None:
                return f"{stamp} {self._label(machine_id)} {message}\n"
            return f"{stamp} {message}\n"
        if entry.get("source") == "stderr":
            message = f"\x1b[33m{message}\x1b[0m"
        if self.prefix and machine_id is not None:
            label = self._label(machine_id)
            pad = " " * (self._width - len(self._shorts[machine_id]))
            return f"\x1b[2m{stamp}\x1b[0m {label}{pad} {message}\n"
        return f"\x1b[2m{stamp}\x1b[0m {message}\n"

    def lines(self, entries: list[dict[str, Any]]) -> list[str]:
        """``line`` of each entry of one machine (no prefix), with its time read as ``entry_time`` reads it.

        The common case is inlined, as this runs once per line of a log of hundreds of thousands: a pipe (no
        colour, nothing to sanitize), an integer timestamp in milliseconds (the sandbox's and Ravel's) and a
        message string without a trailing newline; the time string is made by ``time`` once per distinct
        timestamp. Any other entry goes through ``line``, so the output is the same either way.
        """
        from valyent_cli.api.constants import MS_ABOVE, US_ABOVE
        from valyent_cli.api.logs import entry_time

        line = self.line
        if self.terminal or self.color:
            return [line(entry, entry_time(entry)) for entry in entries]
        out: list[str] = []
        append = out.append
        last: Any = None
        stamp = ""
        for entry in entries:
            raw = entry.get("timestamp")
            message = entry.get("message")
            if type(raw) is not int or not MS_ABOVE < raw <= US_ABOVE or type(message) is not str \
                    or message[-1:] == "\n":
                append(line(entry, entry_time(entry)))
                continue
            if raw != last:
                stamp = self.time(raw / 1000.0)  # entry_time's value for milliseconds
                last = raw
            append(f"{stamp} {message}\n")
        return out


class LineWriter:
    """Batched writes of log lines to stdout as UTF-8 bytes (text with lone surrogates escaped, never an error)."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self._out = sys.stdout.buffer

    def text(self, lines: list[str], *, flush: bool = False) -> None:
        if lines:
            self._out.write("".join(lines).encode("utf-8", "backslashreplace"))
        if flush:
            self._out.flush()

    def block(self, data: bytes) -> None:
        """NDJSON lines as received, each ending with a newline."""
        self._out.write(data)

    def raw(self, lines: list[bytes], *, flush: bool = False) -> None:
        """Lines without their newline, as received (NDJSON passed through untouched)."""
        if lines:
            self._out.write(b"\n".join(lines))
            self._out.write(b"\n")
        if flush:
            self._out.flush()

    def flush(self) -> None:
        self._out.flush()

    def note(self, message: str, *, color: bool) -> None:
        """A dim remark on stderr (a reconnect, a machine that appeared), between batches of stdout."""
        message = sanitize.block(message)  # it may quote the server
        text = f"\x1b[2m{message}\x1b[0m" if color else message
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


@contextmanager
def reader_may_leave() -> Iterator[None]:
    """Stream to stdout; if its reader goes away (`| head`), stop quietly with exit 0, as errors.handle means to.

    typer answers a broken pipe itself with a silent exit 1 before main()'s handler can see it, so streaming
    commands catch it here. stdout is pointed at /dev/null so that the final flush cannot fail again.
    """
    try:
        yield
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        raise SystemExit(0) from None
