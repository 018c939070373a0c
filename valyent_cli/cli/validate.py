"""Checks and parsers for what users type; each error names the flag or file (exit 2, nothing sent)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from valyent_cli.api.constants import RESTART_POLICIES, SIGNALS, STATES  # noqa: F401 - the one source of these lists
from valyent_cli.cli.errors import UsageError

# Patterns as strings, compiled by `re` on first use (and cached there): compiling them at import cost every run
# (this module is imported by most commands) ~0.5 ms, for the few runs that check a name, a size or a duration.
_NAME = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
_ENV_KEY = r"^[A-Za-z_][A-Za-z0-9_]*$"
_SIZE = r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$"
from valyent_cli.durations import PATTERN as _DURATION
MAX_ARG = 64 * 1024
# An image's name and tag as engines take them (the distribution reference grammar): lower-case path components
# joined by `.`, `_`, `__` or dashes, after an optional registry host (`ghcr.io/`, `localhost:5000/`).
_IMAGE_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]+)?"
_IMAGE_NAME = rf"^(?:{_REGISTRY_HOST}/)?{_IMAGE_COMPONENT}(?:/{_IMAGE_COMPONENT})*$"
_REGISTRY = rf"^{_REGISTRY_HOST}(?:/{_IMAGE_COMPONENT})*$"
_IMAGE_TAG = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"


def text(value: str, flag: str) -> str:
    if len(value) > MAX_ARG:
        raise UsageError(f"{flag} is too long ({len(value)} characters; at most {MAX_ARG})")
    if "\x00" in value:
        raise UsageError(f"{flag} must not contain a NUL character")
    # 0xDC80-0xDCFF: bytes of argv that were not UTF-8; any other surrogate: a JSON "\ud800" escape
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise UsageError(f"{flag} is not valid UTF-8")
    return value


def name(value: str, flag: str) -> str:
    """A name or id the CLI sends (a fleet, a machine): text without control characters, which would reach
    terminals when shown back."""
    from valyent_cli.cli.sanitize import has_control

    text(value, flag)
    if has_control(value):
        raise UsageError(f"{flag} must not contain control characters")
    return value


def fleet_name(value: str, flag: str = "NAME") -> str:
    text(value, flag)
    if not re.match(_NAME, value):
        raise UsageError(
            f"{flag}: invalid name {value!r}: use 1-63 ASCII letters, digits and '-', not starting or ending with '-'"
        )
    return value


def size_mb(value: str, flag: str = "--memory") -> int:
    """Memory in MB: `512`, `512mb`, `1gb`, `1.5g`, `2GiB`."""
    match = re.match(_SIZE, value or "")
    if not match:
        raise UsageError(f"{flag}: invalid size {value!r}: use megabytes, e.g. 512, 512mb or 1gb")
    number, unit = float(match.group(1)), match.group(2).lower()
    factors = {"": 1, "m": 1, "mb": 1, "mib": 1, "g": 1024, "gb": 1024, "gib": 1024}
    if unit not in factors:
        raise UsageError(f"{flag}: unknown unit {match.group(2)!r} in {value!r}: use mb or gb")
    result = number * factors[unit]
    if result < 1 or result != int(result):
        raise UsageError(f"{flag}: {value!r} must be a whole number of megabytes, at least 1")
    if result > 16 * 1024 * 1024:
        raise UsageError(f"{flag}: {value!r} is too large")
    return int(result)


def positive_int(value: int | None, flag: str, *, minimum: int = 1, maximum: int | None = None) -> int | None:
    if value is None:
        return None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise UsageError(f"{flag} must be {bound}, not {value}")
    return value


def env_pair(value: str, flag: str = "--env") -> str:
    text(value, flag)
    key, sep, _ = value.partition("=")
    if not sep:
        raise UsageError(f"{flag}: {value!r} is not KEY=VALUE")
    if not re.match(_ENV_KEY, key):
        raise UsageError(f"{flag}: invalid variable name {key!r} (letters, digits and _, not starting with a digit)")
    return value


def read_text(path: str, flag: str) -> str:
    """A small text file a flag names; an unreadable or non-UTF-8 one is a usage error naming the flag."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{flag}: cannot read {path}: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{flag}: {path} is not UTF-8 text") from None


def env_file(path: str, flag: str = "--env-file") -> list[str]:
    """KEY=VALUE lines; blank lines and # comments skipped; `export ` and matching quotes stripped."""
    content = read_text(path, flag)
    result = []
    for number, line in enumerate(content.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.match(_ENV_KEY, key):
            raise UsageError(f"{flag}: {path}, line {number}: expected KEY=VALUE, got {line[:60]!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        result.append(f"{key}={value}")
    return result


def signal_name(value: str, flag: str = "--signal") -> str:
    name = value.strip().upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name not in SIGNALS:
        raise UsageError(f"{flag}: unknown signal {value!r}; use one of {', '.join(SIGNALS)}")
    return name


def choice(value: str, flag: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise UsageError(f"{flag}: {value!r} is not one of {', '.join(choices)}")
    return value


def is_duration(value: str) -> bool:
    return bool(re.fullmatch(_DURATION, value.strip().lower()))


def duration(value: str, flag: str) -> float:
    """Seconds from `30` (seconds), `30s`, `10m`, `2h`, `1d`, `1w`, `500ms`, or a sum such as `1h30m`."""
    from valyent_cli.durations import parse

    seconds = parse(value)
    if seconds is None:
        raise UsageError(f"{flag}: invalid duration {value!r}: use e.g. 30s, 10m, 2h, 1d or 1h30m")
    return seconds


def whole_seconds(value: object, flag: str, *, minimum: int, maximum: int | None = None) -> int:
    """A duration (`5`, `5s`, `1m`) as whole seconds (rounded up) within bounds, for the API's integer fields."""
    import math

    from valyent_cli.durations import parse

    seconds = parse(value)
    if seconds is None:
        raise UsageError(f"{flag}: invalid duration {value!r}: use e.g. 5, 5s or 1m")
    whole = int(math.ceil(seconds))
    if whole < minimum or (maximum is not None and whole > maximum):
        bound = f"between {minimum}s and {maximum}s" if maximum is not None else f"at least {minimum}s"
        raise UsageError(f"{flag} must be {bound}, not {value}")
    return whole


def command_line(value: str, flag: str = "--cmd") -> list[str]:
    import shlex

    text(value, flag)
    try:
        parts = shlex.split(value)
    except ValueError as exc:
        raise UsageError(f"{flag}: cannot split {value!r}: {exc}") from None
    if not parts:
        raise UsageError(f"{flag} must not be empty")
    return parts


def load_payload_file(path: str, flag: str = "--config") -> dict[str, Any]:
    """A create payload from a JSON or TOML file (by extension, else by content); errors give line and column."""
    import json

    content = read_text(path, flag)
    is_toml = path.endswith(".toml") or (not path.endswith(".json") and not content.lstrip().startswith("{"))
    if is_toml:
        import tomllib

        try:
            data: Any = tomllib.loads(content)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{flag}: {path} is not valid TOML: {exc}") from None
        except RecursionError:
            raise UsageError(f"{flag}: {path} is nested too deeply (a create payload is a few levels deep)") from None
    else:
        try:
            data = json.loads(content)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{flag}: {path} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
        except RecursionError:
            raise UsageError(f"{flag}: {path} is nested too deeply (a create payload is a few levels deep)") from None
    if _depth(data) > MAX_PAYLOAD_DEPTH:
        raise UsageError(f"{flag}: {path} is nested too deeply (a create payload is a few levels deep)")
    if not isinstance(data, dict):
        raise UsageError(f"{flag}: {path} must hold an object (a create payload), not {type(data).__name__}")
    return data


#: how deep a create payload file may nest: the real one is five levels deep; far deeper is a mistake or an attack,
#: and would exhaust Python's recursion further on
MAX_PAYLOAD_DEPTH = 32


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (without recursion)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_PAYLOAD_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def image_name(value: str, flag: str = "--image") -> str:
    """The name of an image to build (its tag apart): what `podman build --tag` accepts, refused before sending."""
    text(value, flag)
    if ":" in value.rsplit("/", 1)[-1]:
        raise UsageError(f"{flag}: {value[:80]!r} holds a tag: give the name alone and the tag with --tag")
    if len(value) > 255 or not re.match(_IMAGE_NAME, value):
        raise UsageError(f"{flag}: invalid image name {value[:80]!r}: use lower-case letters, digits and . _ - "
                         "separators, in /-separated parts (e.g. myapp, team/web)")
    return value


def image_tag(value: str, flag: str = "--tag") -> str:
    text(value, flag)
    if not re.match(_IMAGE_TAG, value):
        raise UsageError(f"{flag}: invalid tag {value[:80]!r}: use up to 128 letters, digits, _ . and -, not starting "
                         "with . or -")
    return value


def registry(value: str, flag: str = "--registry") -> str:
    text(value, flag)
    if not re.match(_REGISTRY, value.rstrip("/")):
        raise UsageError(f"{flag}: invalid registry {value[:80]!r}: a host, with a port and a path if needed "
                         "(e.g. ghcr.io/team, localhost:5000)")
    return value


def stdin_has_data() -> bool:
    """Whether something was piped or redirected into us, with data in it (not a terminal, /dev/null or an empty
    pipe: scripts and CI runners often leave stdin open with nothing in it)."""
    import os
    import select
    import stat

    try:
        fd = sys.stdin.fileno()
        if os.isatty(fd):
            return False
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode):
            return os.fstat(fd).st_size > os.lseek(fd, 0, os.SEEK_CUR)
        if not stat.S_ISFIFO(mode) and not stat.S_ISSOCK(mode):
            return False
        ready, _, _ = select.select([fd], [], [], 0.05)
        return bool(ready) and bool(os.read(fd, 1))
    except (OSError, ValueError, AttributeError):
        return False
