"""What the store's queries share: the live states, the API's time format, stored JSON made sendable, the
label filter, and how a full disk shows itself."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import datetime, timezone
from typing import Any

LIVE_STATES = ("created", "preparing", "starting", "running", "stopping", "stopped", "destroying")
EMBEDDED_EVENTS = 20  # a Machine carries its latest events; /events has them all


def dump(value: Any) -> str:
    """A stored JSON document: compact and UTF-8, as Ravel's (Go's) encoder writes it, since answers embed it as
    it is. A string that is not text (a lone surrogate: request bodies holding one are refused, but an event may
    carry one) keeps the escapes of the old encoding, which repair() turns into U+FFFD at the next start."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(value, separators=(",", ":"))
    return text


def now_rfc3339(ts: float | None = None) -> str:
    dt = datetime.fromtimestamp(time.time() if ts is None else ts, tz=timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sendable(text: Any) -> Any:
    """A stored JSON document made sendable: lone surrogates become U+FFFD, NaN and infinities null, and what
    does not parse at all an empty object."""
    def clean(v: Any) -> Any:
        if isinstance(v, str):
            return _SURROGATE.sub("\ufffd", v) if _has_surrogate(v) else v
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            return None
        if isinstance(v, list):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {clean(k): clean(x) for k, x in v.items()}
        return v

    try:
        return clean(json.loads(text))
    except (TypeError, ValueError, RecursionError):
        return {}


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(v: str) -> bool:
    try:
        v.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def is_disk_full(exc: BaseException) -> bool:
    """A write that failed for want of space: SQLite's SQLITE_FULL, or ENOSPC/EDQUOT from the file system."""
    import errno

    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == 13 or "disk is full" in str(exc)  # 13: SQLITE_FULL
    return False


def has_labels(obj: dict, wanted: dict[str, str]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())
