"""How `valyent machines` shows machines: the list's columns, `show`'s fields, the live account of a start.

Used by `machines create/list/show/events` and by `valyent run`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from valyent_cli.api import Machine
    from valyent_cli.cli.context import AppContext
    from valyent_cli.cli.output import Output


def _guest(m: dict[str, Any]) -> str:
    g = (m.get("config") or {}).get("guest") or {}
    return f"{g.get('cpus', '-')}x{g.get('cpu_kind', '-')}/{g.get('memory_mb', '-')}MB"


def columns() -> list[Any]:
    """The columns of `machines list`."""
    from valyent_cli.cli.output import Column, state_style
    from valyent_cli.cli.humanize import ago

    return [
        Column("ID", lambda m: m.get("id")),
        Column("STATE", lambda m: m.get("state"), style=state_style),
        Column("IMAGE", lambda m: (m.get("config") or {}).get("image")),
        Column("REGION", lambda m: m.get("region"), drop=3),
        Column("GUEST", _guest, drop=2),
        Column("CREATED", lambda m: ago(m.get("created_at")), drop=1),
    ]



def version_columns(current: Any) -> list[Any]:
    """The columns of `machines versions` (``current``: the machine's version now)."""
    from valyent_cli.cli.output import Column

    return [
        Column("ID", lambda i: i.get("id")),
        Column("CURRENT", lambda i: "*" if i.get("id") == current else ""),
        Column("IMAGE", lambda i: (i.get("config") or {}).get("image")),
        Column("GUEST", _guest, drop=1),
        Column("CPU MHZ", lambda i: (i.get("resources") or {}).get("cpus_mhz"), justify="right", drop=3),
        Column("MEMORY MB", lambda i: (i.get("resources") or {}).get("memory_mb"), justify="right", drop=2),
    ]


def describe_event(event: dict[str, Any]) -> str:
    """An event's meaning in words: exit code, error, reason."""
    payload = event.get("payload") or {}
    kind = str(event.get("type", ""))
    parts: list[str] = []
    if not isinstance(payload, dict):
        return ""
    # Ravel nests the payload under one key per event kind ({"stopped": {"exit_code": 0, ...}}); accept it flat too.
    inner: dict[str, Any] = dict(payload)
    for key in ("prepare_failed", "start", "start_failed", "started", "stop", "stopped", "destroy"):
        if isinstance(payload.get(key), dict):
            inner.update(payload[key])
    if "exit_code" in inner:
        parts.append(f"exit code {inner['exit_code']}")
    for key in ("error", "reason", "progress"):
        if inner.get(key):
            parts.append(f"{key}: {inner[key]}")
    if kind.endswith(".start") and inner.get("is_restart"):
        parts.append("restart")
    if kind.endswith(".destroy"):
        if inner.get("force"):
            parts.append("forced")
        if inner.get("auto_destroy"):
            parts.append("auto-destroy")
    config = inner.get("config")
    if kind.endswith(".stop") and isinstance(config, dict):
        sig = config.get("signal")
        to = config.get("timeout")
        parts.append(" ".join(x for x in (sig and str(sig), to is not None and f"timeout {to}s" or "") if x))
    return ", ".join(p for p in parts if p)


#: seconds a new machine must keep running before create calls it started (one long poll; the server's minimum)
START_SETTLE = 1
#: log lines shown when a machine fails to start
LAST_LINES = 10


def _print_last_lines(client: Any, out: Output, fleet: str, machine_id: str) -> None:
    """The end of a machine's log on stderr: what it said before it died."""
    from collections import deque

    from valyent_cli.api import ValyentError

    try:
        last = deque(client.machines.iter_logs(fleet, machine_id), maxlen=LAST_LINES)
    except ValyentError:
        return
    if last:
        out.info("Last lines of its log:")
        for entry in last:
            out.info(f"  {entry.get('message', '')}")


def watch_start(app_: AppContext, out: Output, fleet: str, machine: Machine, limit: float) -> Machine:
    """Show each state and event live on stderr until the machine runs; fail with its own error if it does not."""
    from valyent_cli.api import NotFound, ValyentError
    from valyent_cli.cli.errors import CliError
    from valyent_cli.cli.exits import Exit

    client = app_.connect()
    machine_id = str(machine.get("id"))
    deadline = time.monotonic() + limit
    seen: set[str] = set()
    failure: str | None = None
    settled = False
    delay = 0.05
    with out.progress(f"Waiting for {machine_id} to run...") as update:
        while True:
            try:
                events = client.machines.events(fleet, machine_id)
            except NotFound:
                events = []
            for event in events:
                key = str(event.get("id") or (event.get("type"), event.get("timestamp")))
                if key in seen:
                    continue
                seen.add(key)
                detail = describe_event(event)
                line = f"  {event.get('type')} -> {event.get('status')}" + (f" ({detail})" if detail else "")
                out.event_line(line)
                update(f"Waiting for {machine_id} to run: {event.get('status')}...")
                kind = str(event.get("type"))
                if kind in ("machine.start_failed", "machine.prepare_failed"):
                    failure = detail or kind
                elif kind == "machine.exited" and failure is None:
                    failure = f"it exited ({detail})" if detail else "it exited"
            state = str(events[-1].get("status")) if events else str(machine.get("state"))
            if state == "running" and not settled:
                # Running is not started yet: a command that fails at once (a taken port, `false`) exits within
                # moments. Hold on for the settle window (the long poll returns as soon as it stops), then look
                # again: any exit by then, whatever the restart policy does next, is a failed start.
                settled = True
                update(f"Waiting for {machine_id} to settle...")
                try:
                    client.machines.wait(fleet, machine_id, "stopped", START_SETTLE)
                except ValyentError:
                    pass  # still running at the end of the window (the usual case), or gone: the events say
                continue
            if state == "running" and failure is None:
                break
            if state in ("stopped", "destroyed", "destroying") and (failure or len(seen) > 2) or failure and settled:
                _print_last_lines(client, out, fleet, machine_id)
                raise CliError(
                    f"machine {machine_id} did not start: {failure or state}",
                    Exit.ERROR,
                    hint=f"see its logs: valyent logs {machine_id} --fleet {fleet}",
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CliError(
                    f"machine {machine_id} is not running after {limit:g} s (state: {state})",
                    Exit.TIMEOUT,
                    hint=f"wait longer: valyent machines wait {machine_id} --timeout 5m",
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 1.5, 0.5)
    machine = client.machines.get(fleet, machine_id)
    if not out.quiet:
        out.done(f"Machine {machine_id} is running")
    return machine


def show_machine(out: Output, m: dict[str, Any], fleet_label: str | None = None) -> None:
    from valyent_cli.cli.output import state_style
    from valyent_cli.cli.humanize import clock

    config = m.get("config") or {}
    guest = config.get("guest") or {}
    workload = config.get("workload") or {}
    init = workload.get("init") or {}
    restart = workload.get("restart") or {}
    rows: list[tuple[str, Any]] = [
        ("ID", m.get("id")),
        ("State", m.get("state")),
        ("Fleet", fleet_label or m.get("fleet")),
        ("Region", m.get("region")),
        ("Image", config.get("image")),
        ("Guest", f"{guest.get('cpus', '-')} x {guest.get('cpu_kind', '-')}, {guest.get('memory_mb', '-')} MB"),
        ("Command", _shell_words([*(init.get("entrypoint") or []), *(init.get("cmd") or [])]) or None),
        ("Env", ", ".join(workload.get("env") or []) or None),
        ("Restart", (restart.get("policy") or "-") + (f" (max {restart['max_retries']})" if "max_retries" in restart else "")),
        ("Gateway", m.get("gateway_enabled")),
        ("Instance", m.get("instance_id")),
        ("Created", clock(m.get("created_at"))),
        ("Updated", clock(m.get("updated_at"))),
    ]
    if m.get("health"):
        rows.insert(2, ("Health", m.get("health")))
    rows[rows.index(("Env", ", ".join(workload.get("env") or []) or None))] = ("Env", _env_shown(workload))
    rows[-3:-3] = _ravel_rows(m, workload)
    out.fields(m, rows, styles={"State": state_style, "Health": state_style})


def _env_shown(workload: dict[str, Any]) -> str | None:
    """The environment, with the values of secret variables hidden (a server may return them resolved)."""
    hidden = {str(r.get("env_var")) for r in workload.get("secrets") or [] if isinstance(r, dict)}
    shown = []
    for item in workload.get("env") or []:
        key, sep, _ = str(item).partition("=")
        shown.append(f"{key}=<secret>" if sep and key in hidden else str(item))
    return ", ".join(shown) or None


def _ravel_rows(m: dict[str, Any], workload: dict[str, Any]) -> list[tuple[str, Any]]:
    """Labels, annotations, secret references, health check, volumes and private networks, when there are any."""
    from valyent_cli.cli.metadata import show as show_pairs

    metadata = m.get("metadata") or {}
    health = workload.get("health_check") or {}
    check = None
    if health:
        settings = ", ".join(f"{k} {health[k]}{'s' if k != 'retries' else ''}" for k in ("interval", "timeout", "retries") if health.get(k))
        check = " ".join(health.get("exec") or []) + (f" ({settings})" if settings else "")
    rows: list[tuple[str, Any]] = [
        ("Labels", show_pairs(metadata.get("labels"))),
        ("Annotations", show_pairs(metadata.get("annotations"))),
        ("Secrets", ", ".join(f"{r.get('name')} as {r.get('env_var')}" for r in workload.get("secrets") or []) or None),
        ("Health check", check),
        ("Volumes", ", ".join(f"{v.get('name')} at {v.get('path')}" for v in workload.get("volumes") or []) or None),
        ("Networks", ", ".join(f"{n.get('name')} {n.get('ip')}" for n in workload.get("private_networks") or []) or None),
    ]
    return [row for row in rows if row[1]]


def _shell_words(words: list[str]) -> str:
    """The command as a shell would read it (shlex, imported only to show a machine)."""
    import shlex

    return shlex.join(words)


def stopped(machine: Any) -> str:
    """What `machines stop` says of a machine it stopped and waited for: whether the stop signal ended it or the
    kill after the timeout did (from its events)."""
    from valyent_cli.api import ValyentError
    from valyent_cli.cli.exitstatus import killed_after_stop

    try:
        how = killed_after_stop(machine.events())
    except ValyentError:  # the events are a detail: the machine stopped
        how = None
    return f"Stopped {machine.get('id')}" + (f": {how}" if how else "")


def delete_question(machines: list[Any], *, force: bool, yes: bool) -> tuple[str, bool]:
    """The question `machines delete` asks on a terminal, and whether the delete forces: a live machine is named
    in the question, which offers to stop it, rather than failing after the answer."""
    ids = ", ".join(str(m.get("id")) for m in machines)
    plural = "s" if len(machines) > 1 else ""
    live = [m for m in machines if m.get("state") in ("created", "preparing", "starting", "running", "stopping")]
    if not live or force or yes:
        return f"Delete machine{plural} {ids}?", force
    states = " ".join(f"{m.get('id')} is {m.get('state')}." for m in live)
    return f"{states} Stop and delete machine{plural} {ids}?", True
