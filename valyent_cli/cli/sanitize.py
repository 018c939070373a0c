"""Text from a server or a machine, made safe to show on a terminal.

A file name, an image reference, an error detail or a log line can carry terminal control sequences:
``\\e]0;...\\a`` sets the window title, ``\\e[2J`` clears the screen, others move the cursor, rewrite what was shown
or (on some terminals) answer back as if typed. Every such string is shown with its control characters escaped
(``\\x1b``, ``\\x07``, ``\\u202e``...): visible, inert. Log lines and a command's output shown on a terminal keep
their colours (SGR sequences, ``\\e[...m``) and nothing else. ``--json`` and data written to a pipe are untouched.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and the Unicode format characters that reorder or hide text (bidi overrides and
# isolates, which make a name read differently from what it is).
_FORMAT = "\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_SOURCES = {
    "any": f"[\x00-\x1f{_FORMAT}]",
    # The same, but for newline (\n) and tab (\t), which a message or an output may hold.
    "but_lines": f"[\x00-\x08\x0b-\x1f{_FORMAT}]",
    # What a terminal's output may keep: colour (SGR) sequences, a CR before a newline, newlines and tabs.
    "output": f"(\x1b\\[[0-9;:]*m)|(\r\n)|([\x00-\x08\x0b-\x1f{_FORMAT}])",
}
_compiled: dict[str, re.Pattern[str]] = {}


def _pattern(name: str) -> re.Pattern[str]:
    """The expression compiled on first use: every command imports this module (through the output), and most
    (`--json`, a pipe) never use it; compiling the three at import cost ~0.6 ms of each run."""
    pattern = _compiled.get(name)
    if pattern is None:
        pattern = _compiled[name] = re.compile(_SOURCES[name])
    return pattern


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def line(text: str) -> str:
    """One line for a table cell or a name: every control character escaped, newlines and tabs too."""
    pattern = _pattern("any")
    if not pattern.search(text):
        return text
    return pattern.sub(lambda m: _escape(m.group()), text)


def block(text: str) -> str:
    """A message that may span lines: newlines and tabs kept, every other control character escaped."""
    pattern = _pattern("but_lines")
    if not pattern.search(text):
        return text
    return pattern.sub(lambda m: _escape(m.group()), text)


def output(text: str) -> str:
    """A log line or a command's output for a terminal: colour (SGR) kept, with newlines, tabs and CR-LF; every
    other control character escaped, so no sequence can move the cursor, clear the screen or set the title."""
    if "\x1b" not in text and not _pattern("but_lines").search(text):
        return text

    def sub(match: re.Match[str]) -> str:
        if match.group(3) is None:
            return match.group()
        return _escape(match.group(3))

    return _pattern("output").sub(sub, text)


def has_control(text: str) -> bool:
    """Whether a value the CLI would send holds a control (or bidi format) character."""
    return _pattern("any").search(text) is not None
