"""What a deploy wants: valyent.toml's [deploy] table under the flags, checked before any request."""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass
from typing import Any

from valyent_cli.apps.plan import STRATEGIES
from valyent_cli.cli import validate as v
from valyent_cli.cli.errors import UsageError

DEFAULT_COUNT = 1
DEFAULT_STRATEGY = "rolling"
DEFAULT_MAX_UNAVAILABLE = 1
DEFAULT_WAIT_TIMEOUT = 120.0
#: an app's name goes into a label value and an annotation key
_APP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass
class DeploySpec:
    app: str
    count: int
    strategy: str
    max_unavailable: int
    wait_timeout: float
    release_command: list[str] | None = None


def app_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _APP.match(value):
        raise UsageError(f"{where}: {str(value)[:80]!r} is not an app name (letters, digits, '-', '_', '.'; "
                         "at most 63 characters, starting with a letter or digit)")
    return value


def max_unavailable(value: Any, count: int, where: str) -> int:
    """A number of machines, or a percentage of ``count`` ("33%": rounded down, at least 1)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            percent = float(value.strip()[:-1])
        except ValueError:
            percent = -1
        if not 0 < percent <= 100:
            raise UsageError(f"{where}: {value!r} is not a percentage from 1% to 100%")
        return max(1, math.floor(count * percent / 100))
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number < 1:
        raise UsageError(f"{where}: {value!r} must be a whole number >= 1 or a percentage such as \"33%\"")
    return number


def read(deploy: dict[str, Any], *, source: str, fleet: str, count: int | None = None, strategy: str | None = None,
         wait_timeout: str | None = None, max_unavailable_flag: str | None = None) -> DeploySpec:
    """The spec: flags > [deploy] table > defaults. Errors name the flag, or the file and the key."""
    def where(key: str, flag: str, from_flag: bool) -> str:
        return flag if from_flag else f"{source}: [deploy] {key}"

    app = app_name(deploy.get("app", fleet), where("app", "--fleet", "app" not in deploy))
    n = count if count is not None else deploy.get("count", DEFAULT_COUNT)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1000:
        raise UsageError(f"{where('count', '--count', count is not None)} must be a whole number from 1 to 1000")
    chosen = strategy if strategy is not None else deploy.get("strategy", DEFAULT_STRATEGY)
    if chosen not in STRATEGIES:
        raise UsageError(f"{where('strategy', '--strategy', strategy is not None)}: {chosen!r} is not one of "
                         f"{', '.join(STRATEGIES)}")
    unavailable = max_unavailable(
        max_unavailable_flag if max_unavailable_flag is not None else deploy.get("max_unavailable", 1), n,
        where("max_unavailable", "--max-unavailable", max_unavailable_flag is not None))
    raw_wait = wait_timeout if wait_timeout is not None else deploy.get("wait_timeout", DEFAULT_WAIT_TIMEOUT)
    wait_where = where("wait_timeout", "--wait-timeout", wait_timeout is not None)
    seconds = float(raw_wait) if isinstance(raw_wait, (int, float)) and not isinstance(raw_wait, bool) else (
        v.duration(str(raw_wait), wait_where))
    if seconds <= 0:
        raise UsageError(f"{wait_where} must be more than 0")
    command = deploy.get("release_command")
    if isinstance(command, str):
        try:
            command = shlex.split(command)
        except ValueError:
            command = None
        if not command:
            raise UsageError(f"{source}: [deploy] release_command does not split like a shell line")
    return DeploySpec(app=app, count=n, strategy=chosen, max_unavailable=unavailable, wait_timeout=seconds,
                      release_command=list(command) if command else None)
