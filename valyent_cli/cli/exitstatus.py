"""How a machine ended, read from its events: the exit code an exit event carries, events in time order, and the
exit status a shell would give for that code. Shared by `machines run` and `logs --exit-with-machine`."""

from __future__ import annotations

from typing import Any


def exit_code_of(event: dict[str, Any]) -> int | None:
    """The exit code an exit event carries: Ravel nests it (`{"stopped": {"exit_code": N}}`); flat is accepted."""
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return None
    inner = payload.get("stopped") if isinstance(payload.get("stopped"), dict) else payload
    code = inner.get("exit_code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def shell_code(code: int | None) -> int:
    """The exit status a shell would give: 0-255 as is; a negative -N (killed by signal N, as Python reports it)
    is 128+N; anything else (Go's -1 for "killed by a signal", unknown) is 1, an error."""
    from valyent_cli.cli.exits import Exit

    if code is None:
        return Exit.ERROR
    if 0 <= code <= 255:
        return code
    if -64 <= code <= -2:
        return 128 - code
    return Exit.ERROR


def ordered(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events oldest first, by their time: Ravel's listing has no ORDER BY (the sandbox's is ordered already)."""
    from valyent_cli.cli.humanize import parse_time

    return sorted(events, key=lambda e: parse_time(e.get("timestamp")) or 0.0)


def killed_after_stop(events: list[dict[str, Any]]) -> str | None:
    """How the last stop ended when its signal did not end the machine and the kill after the timeout did (exit
    137, or -9 as Python reports it): "it did not end on SIGTERM within 10 s: killed (SIGKILL)"; else None."""
    events = ordered(events)
    stops = [i for i, e in enumerate(events) if e.get("type") == "machine.stop"]
    if not stops:
        return None
    exits = [e for e in events[stops[-1]:] if e.get("type") == "machine.exited"]
    payload = events[stops[-1]].get("payload")
    stop = payload.get("stop") if isinstance(payload, dict) else None
    config = (stop.get("config") if isinstance(stop, dict) else None) or {}
    signal = str(config.get("signal") or "its stop signal")
    if not exits or exit_code_of(exits[0]) not in (137, -9) or signal == "SIGKILL":
        return None
    within = f" within {config['timeout']} s" if isinstance(config.get("timeout"), (int, float)) else ""
    return f"it did not end on {signal}{within}: killed (SIGKILL)"
