"""Starting the sandbox when the `local` profile is used while it is down: one explicit step, no hidden effects.

:func:`ensure_sandbox` is the only place that starts the daemon on a command's behalf. It returns the settings the
command should go on with (a new :class:`~valyent_cli.config.Settings` when the sandbox handed out a new token) and
never changes the settings it is given. It is called by ``AppContext.connect()`` and by nothing that merely reads.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from valyent_cli.config import Settings


class AutostartError(Exception):
    """The sandbox was down and could not be started."""


def sandbox_address(settings: Settings) -> tuple[str, int]:
    parts = urlsplit(settings.endpoint)
    return parts.hostname or "127.0.0.1", parts.port or 80


def is_listening(host: str, port: int) -> bool:
    """Whether something accepts connections there (a refused connect costs ~0.1 ms)."""
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
        return dataclasses.replace(settings, token=token)
    return settings
