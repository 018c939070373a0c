"""The errors of the configuration layer: a problem the user must fix (exit code 2)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A configuration problem the user must fix: a broken or unwritable file, a bad value, an unknown profile.

    ``path`` and ``line`` say where, when a file is involved. Maps to exit code 2. Accepts either
    ``ConfigError(path, line, message)`` or ``ConfigError(message, path=..., line=...)``. Messages never contain
    a token.
    """

    def __init__(self, *args: Any, path: str | os.PathLike[str] | None = None, line: int | None = None) -> None:
        if len(args) == 3:
            path, line, message = args
        elif len(args) == 1:
            (message,) = args
        else:
            raise TypeError("ConfigError(path, line, message) or ConfigError(message, path=..., line=...)")
        self.path = Path(path) if path is not None else None
        self.line = line
        self.message = str(message)
        super().__init__(self.message)

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        where = str(self.path) + (f", line {self.line}" if self.line else "")
        return f"{where}: {self.message}"


class InsecureTransportError(ConfigError):
    """The token would travel over plain http to a host that is not loopback, and nothing allows it."""
