"""Durations as people type them: `30` (seconds), `30s`, `2m`, `1h30m`, `500ms`. One parser for every time option
and configuration key (cli/validate.py for flags, config/values.py for profile keys); imports nothing of ours."""

from __future__ import annotations

import re

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
PATTERN = r"\d+(?:\.\d+)?|(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+"
PART = r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)"


def parse(value: object) -> float | None:
    """Seconds, or None when ``value`` is not a duration (a number counts as seconds)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().lower()
    if not re.fullmatch(PATTERN, text):
        return None
    if text[-1].isdigit():
        return float(text)
    return sum(float(n) * UNITS[unit] for n, unit in re.findall(PART, text))
