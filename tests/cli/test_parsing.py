"""Time and duration parsing shared by the commands (`--since`, `--timeout`, tables' times)."""

from __future__ import annotations

import pytest

from valyent_cli.cli.errors import UsageError
from valyent_cli.cli.humanize import ago, clock, parse_time
from valyent_cli.cli.validate import duration
from valyent_cli.commands.logs import parse_since


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-01-01T00:00:00Z", 1704067200.0),
    ("2024-01-01T00:00:00z", 1704067200.0),
    ("2024-01-01T00:00:00", 1704067200.0),  # no offset: UTC, whatever the local zone
    ("2024-01-01T00:00:00.123456789Z", 1704067200.123456),  # Go's nanoseconds
    ("2024-01-01T00:00:00.123456789+00:00", 1704067200.123456),
    ("2024-01-01T01:00:00.5+01:00", 1704067200.5),
    (1704067200, 1704067200.0),
    (1704067200123, 1704067200.123),  # milliseconds
])
def test_parse_time(text, expected):
    assert parse_time(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01T00:00:00Z", None])
def test_parse_time_refuses_junk(text):
    assert parse_time(text) is None


def test_ago_and_clock():
    assert ago(1704067200, now=1704067200 + 3 * 3600 + 5) == "3h ago"
    assert ago("not a time") == "-"
    assert clock(1704067200123) == "2024-01-01T00:00:00.123Z"


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("500ms", 0.5),
    ("1h30m", 5400), (" 5M ", 300),
])
def test_duration(text, seconds):
    assert duration(text, "--timeout") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "10 m", "-5s", "1h-30m", "m10"])
def test_duration_refuses_junk_naming_the_flag(text):
    with pytest.raises(UsageError, match="--timeout"):
        duration(text, "--timeout")


def test_since_is_a_duration_back_or_a_time():
    assert parse_since("1h30m", now=10_000.0) == 10_000.0 - 5400
    assert parse_since("2024-01-01T00:00:00Z", now=0.0) == 1704067200.0
    for bad in ("30", "soon", "2024-13-01"):
        with pytest.raises(UsageError, match="--since"):
            parse_since(bad, now=0.0)
