"""How much of each machine's log the sandbox keeps (`local start --log-max-lines/--log-max-bytes`, env
VALYENT_LOCAL_LOG_MAX_LINES and VALYENT_LOCAL_LOG_MAX_BYTES): the oldest entries go once a log is 10 % over either
(the supervisor applies it)."""

from __future__ import annotations

import os

DEFAULT_LOG_MAX_LINES = 1_000_000
DEFAULT_LOG_MAX_BYTES = 100 * 1024 * 1024


def log_retention() -> tuple[int, int]:
    """(max lines, max bytes) of a machine's log, from the environment `local start` passes to the server."""
    def get(name: str, default: int) -> int:
        raw = os.environ.get(name, "")
        return int(raw) if raw.strip().isdigit() and int(raw) > 0 else default

    return (get("VALYENT_LOCAL_LOG_MAX_LINES", DEFAULT_LOG_MAX_LINES),
            get("VALYENT_LOCAL_LOG_MAX_BYTES", DEFAULT_LOG_MAX_BYTES))
