"""Starting the sandbox when the `local` profile is used while it is down: one explicit step, no hidden effects.

:func:`ensure_sandbox` is the only place that starts the daemon on a command's behalf. It returns the settings the
command should go on with (a new :class:`~valyent_cli.config.Settings` when the sandbox handed out a new token) and
never changes the settings it is given. It is called by ``AppContext.connect()`` and by nothing that merely reads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from valyent_cli.config import Settings


class AutostartError(Exception):
    """The sandbox was down and could not be started."""


def local_profile() -> dict:
    """The `local` profile as stored, or {} (none yet, or an unreadable config: start rewrites it)."""
    from valyent_cli import config

    try:
        return config.list_profiles()[1].get(config.LOCAL_PROFILE) or {}
    except config.ConfigError:
        return {}


def active_local_profile() -> dict:
    """The active profile when it is a sandbox's (`local`, or `local-PORT` of a second sandbox), else {}."""
    from valyent_cli import config

    try:
        active, profiles = config.list_profiles()
    except config.ConfigError:
        return {}
    table = profiles.get(active) or {} if active else {}
    return table if active == config.LOCAL_PROFILE or table.get("local") is True else {}


def sandbox_data_dir(flag: Path | None) -> Path | None:
    """The sandbox a command means: --data-dir, else VALYENT_LOCAL_DIR, else the one the `local` profile points at
    (where `local start` last ran it), else the default (None)."""
    import os

    if flag is not None or os.environ.get("VALYENT_LOCAL_DIR"):
        return flag
    data_dir = active_local_profile().get("data_dir") or local_profile().get("data_dir")
    return Path(data_dir) if isinstance(data_dir, str) and data_dir else None


def sandbox_address(settings: Settings) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(settings.endpoint)
    return parts.hostname or "127.0.0.1", parts.port or 80


def is_listening(host: str, port: int) -> bool:
    """Whether something accepts connections there (a refused connect costs ~0.1 ms)."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def ensure_sandbox(settings: Settings, *, data_dir: Path | None, note: Callable[[str], None]) -> Settings:
    """Start the sandbox ``settings`` point at if nothing listens there; return the settings to use afterwards.

    A sandbox started on a new data dir has a new token: when the token came from the profile, the profile is
    saved with the new one (rather than failing with 401) and the returned settings carry it. ``note`` tells the
    user that a start is under way. Raises :class:`AutostartError` when the start fails.
    """
    host, port = sandbox_address(settings)
    if is_listening(host, port):
        return settings
    from valyent_cli.local.daemon import DaemonError, ensure_running
    from valyent_cli.local.runner import ServeError

    note(f"Starting the local sandbox on {host}:{port}...")
    try:
        info = ensure_running(data_dir, port=port, host=host)
    except (DaemonError, ServeError) as exc:
        raise AutostartError(str(exc)) from None
    token = info.get("token")
    if token and token != settings.token and settings.sources.get("token") == "profile":
        from valyent_cli.config import set_profile_value

        if settings.profile:
            set_profile_value(settings.profile, "token", token)
        import dataclasses

        return dataclasses.replace(settings, token=token)
    return settings


def local_driver(settings: Settings) -> str | None:
    """The driver of the sandbox the `local` profile points at (podman, docker, process), when it says."""
    from valyent_cli.local.daemon import read_info
    from valyent_cli.local.paths import resolve_data_dir

    info = read_info(resolve_data_dir(sandbox_data_dir(None))) or {}
    driver = info.get("driver")
    return str(driver) if driver else None
