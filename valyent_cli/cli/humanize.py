"""Values as people read them in tables and fields: sizes (`human_size`), times from the API's RFC3339 strings or
Unix timestamps of any unit (`parse_time`), as an age (`ago`) or a UTC clock time to the millisecond (`clock`), and
a length of time with its unit (`span`: 2 -> "2s", 90 -> "1m30s")."""

from __future__ import annotations

import time
from typing import Any


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
    """Unix seconds from an RFC3339 string or a Unix timestamp in seconds, ms, µs or ns (by magnitude)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        from valyent_cli.api.constants import TIMESTAMP_SCALES

        for limit, scale in TIMESTAMP_SCALES:
            if value > limit:
                return value / scale
        return float(value)
    if isinstance(value, str):
        from datetime import datetime, timezone

        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        # Python 3.11 parses at most microseconds; Go writes nanoseconds.
        if "." in text:
            head, _, rest = text.partition(".")
            digits = len(rest) - len(rest.lstrip("0123456789"))
            text = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        if moment.tzinfo is None:  # a time without an offset is UTC, as the API writes them
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
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


def span(seconds: float) -> str:
    """A length of time as the duration options take it: "2s", "1m30s", "2h", "0.5s"."""
    if seconds < 60:
        return f"{seconds:g}s"
    whole = int(round(seconds))
    parts = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts)
