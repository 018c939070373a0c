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


def describe_event(event: dict[str, Any], brief: bool = False) -> str:
    """An event's meaning in words: exit code, error, reason, pull progress, health (``brief``: the reason alone,
    without its key)."""
    payload = event.get("payload") or {}
    kind = str(event.get("type", ""))
    parts: list[str] = []
    if not isinstance(payload, dict):
        return ""
    # Ravel nests the payload under one key per event kind ({"stopped": {"exit_code": 0, ...}}); accept it flat too.
    inner: dict[str, Any] = dict(payload)
    for key in ("prepare", "prepare_failed", "start", "start_failed", "started", "stop", "stopped", "destroy", "health"):
        if isinstance(payload.get(key), dict):
            inner.update(payload[key])
    if "exit_code" in inner:
        parts.append(f"exit code {inner['exit_code']}")
    if brief:
        return str(inner.get("error") or inner.get("reason") or "")
    for key in ("error", "reason", "progress"):
        if inner.get(key):
            parts.append(f"{key}: {inner[key]}" if key != "progress" else str(inner[key]))
    if kind.endswith(".health") and inner.get("status"):
        failures = inner.get("consecutive_failures")
        parts.append(str(inner["status"]) + (f" ({failures} failed checks in a row)" if failures else ""))
        if inner.get("output"):
            parts.append(f"last check: {inner['output']}")
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


#: log lines shown when a machine fails to start
LAST_LINES = 10
#: seconds create keeps looking at the events of a machine that runs, for an exit or a restart at its first breath
CONFIRM = 0.3
#: the note for a machine that ran its command and exited 0 at once (a one-shot command, not a service)
ONE_SHOT_NOTE = "exited 0 right after starting; for one-shot commands use `valyent machines run`"


def _print_last_lines(client: Any, out: Output, fleet: str, machine_id: str, said: str) -> None:
    """The end of a machine's log on stderr: what it said before it died (lines the error already says are left out)."""
    from collections import deque

    from valyent_cli.api import ValyentError

    try:
        last = deque((str(e.get("message", "")) for e in client.machines.iter_logs(fleet, machine_id)), maxlen=LAST_LINES)
    except ValyentError:
        return
    lines = [line for line in last if line.strip() and line.strip() not in said]
    if lines:
        out.info("Last lines of its log:")
        for line in lines:
            out.info(f"  {line}")


def _is_restart(event: dict[str, Any]) -> bool:
    payload = event.get("payload") or {}
    inner = payload.get("start") if isinstance(payload, dict) and isinstance(payload.get("start"), dict) else payload
    return bool(isinstance(inner, dict) and inner.get("is_restart"))


def start_verdict(events: list[dict[str, Any]]) -> tuple[str, str] | None:
    """How a start went, from the machine's events since it was asked to start (oldest first):
    ("running", note), ("exited", note) for a command that ran and exited 0, ("failed", reason), or None while
    it is undecided (preparing, starting). Judged from what happened (which exit code, how many restarts), never
    from how long it has been running."""
    from valyent_cli.cli.exitstatus import exit_code_of

    exits: list[int | None] = []
    restarts = 0
    last_state = None
    for event in events:
        kind = str(event.get("type"))
        if kind in ("machine.prepare_failed", "machine.start_failed"):
            return ("failed", describe_event(event, brief=True) or kind)
        if kind == "machine.exited":
            exits.append(exit_code_of(event))
        elif kind == "machine.start" and _is_restart(event):
            restarts += 1
        if kind != "machine.health" and event.get("status"):
            last_state = str(event.get("status"))
    failures = [c for c in exits if c != 0]
    if failures:
        code = failures[-1]
        said = f"exit code {code}" if code is not None else "no exit code"
        if restarts >= 2 or (restarts and last_state != "running"):
            return ("failed", f"it is crash-looping: exited {len(exits)} times, restarted {restarts} ({said})")
        if last_state != "running":
            return ("failed", f"it exited ({said})")
        return ("running", f"it exited ({said}) and was restarted")
    if exits and last_state != "running":
        return ("exited", ONE_SHOT_NOTE)
    if last_state in ("destroying", "destroyed"):
        return ("failed", f"it was {last_state}")
    if last_state == "running":
        return ("running", f"it exited 0 and was restarted {restarts} times" if exits else "")
    return None


def event_key(event: dict[str, Any]) -> str:
    return str(event.get("id") or (event.get("type"), event.get("timestamp")))


def watch_start(app_: AppContext, out: Output, fleet: str, machine: Machine, limit: float) -> Machine:
    """Show each state and event live on stderr until the start is judged from the events (start_verdict); fail
    with the machine's own error if it does not run."""
    from valyent_cli.api import ApiError, NotFound
    from valyent_cli.cli.errors import CliError
    from valyent_cli.cli.exitstatus import ordered
    from valyent_cli.cli.exits import Exit

    client = app_.connect()
    machine_id = str(machine.get("id"))
    deadline = time.monotonic() + limit
    seen: set[str] = set()
    mine: list[dict[str, Any]] = []
    delay = 0.05
    confirm_until = 0.0
    with out.progress(f"Waiting for {machine_id} to run...") as update:
        while True:
            try:
                events = ordered(client.machines.events(fleet, machine_id))  # Ravel's come in no order
            except NotFound:
                events = []
            for event in events:
                key = event_key(event)
                if key in seen:
                    continue
                seen.add(key)
                mine.append(event)
                kind = str(event.get("type"))
                # a failure's reason is said once, in the error below
                detail = "" if kind in ("machine.prepare_failed", "machine.start_failed") else describe_event(event)
                if kind == "machine.prepare" and detail.startswith("Error:"):
                    continue  # the engine's own error line: the failure event that follows carries it
                out.event_line(f"  {kind} -> {event.get('status')}" + (f" ({detail})" if detail else ""))
                update(f"Waiting for {machine_id} to run: {event.get('status')}" + (f" ({detail})" if detail else "") + "...")
            verdict = start_verdict(mine)
            if verdict is not None and verdict[0] == "running":
                # A command that fails (or ends) at its first breath does so within moments: a few quick looks at
                # the events catch its exit or restart; a server that keeps running is never held up longer.
                now = time.monotonic()
                confirm_until = confirm_until or now + CONFIRM
                if now < confirm_until:
                    time.sleep(min(0.05, confirm_until - now))
                    continue
            if verdict is not None:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                state = str(mine[-1].get("status")) if mine else str(machine.get("state"))
                raise CliError(
                    f"machine {machine_id} is not running after {limit:g} s (state: {state})",
                    Exit.TIMEOUT,
                    hint=f"wait longer: valyent machines wait {machine_id} --timeout 5m",
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 1.5, 0.5)
    outcome, note = verdict
    if outcome == "failed":
        _print_last_lines(client, out, fleet, machine_id, note)
        raise CliError(f"machine {machine_id} did not start: {note}", Exit.ERROR,
                       hint=failure_hint(app_, fleet, machine_id, note, (machine.get("config") or {}).get("image")))
    try:
        machine = client.machines.get(fleet, machine_id)
    except NotFound:
        pass  # auto-destroyed after its exit
    except ApiError as exc:  # a Ravel with the no-op cluster state cannot read machines: its events said running
        if exc.status < 500:
            raise
        machine = type(machine)({**machine, "state": "running"}, client, fleet)
    if not out.quiet:
        if outcome == "exited":
            out.note(f"Machine {machine_id} {note}")
        else:
            out.done(f"Machine {machine_id} is running" + (f" ({note})" if note else ""))
    return machine


def failure_hint(app_: AppContext, fleet: str, machine_id: str, reason: str, image: Any) -> str:
    """What to do about a failed start: for an image the sandbox's engine cannot pull (its words: "pulling image
    ..."), the ways out; else where to look."""
    if reason.startswith("pulling image") and image:
        engine = None
        if app_.settings.is_local:
            from valyent_cli.local.autostart import local_driver

            engine = local_driver(app_.settings)
        if engine in ("podman", "docker"):
            pull, images = f"`{engine} pull {image}`", f"`{engine} images`"
        else:  # a sandbox reached by its URL: its engine is not known here
            engine = "engine"
            pull, images = f"`podman pull {image}` or `docker pull {image}`", "`podman images` or `docker images`"
        return (f"the sandbox's {engine} cannot pull {image}: pull it yourself ({pull}), use an image it already "
                f"has ({images}), or run commands without images: "
                "`valyent local stop && valyent local start --driver process`")
    return f"see its logs: valyent logs {machine_id} --fleet {fleet}"


def health_now(m: dict[str, Any]) -> str | None:
    """The machine's health as of now: a machine that does not run has none (the API keeps the last value)."""
    return m.get("health") if m.get("state") == "running" else None


def last_check(client: Any, fleet: str, machine_id: str) -> str | None:
    """The output of the machine's last health check the events tell of (the sandbox records it; Ravel does not)."""
    from valyent_cli.api import ValyentError
    from valyent_cli.cli.exitstatus import ordered

    try:
        events = ordered(list(client.machines.events(fleet, machine_id)))
    except ValyentError:
        return None
    for event in reversed(events):
        payload = event.get("payload") if isinstance(event.get("payload"), dict) else {}
        health = payload.get("health") if isinstance(payload.get("health"), dict) else {}
        if event.get("type") == "machine.health" and "output" in health:
            failures = health.get("consecutive_failures")
            said = str(health.get("output") or "").strip() or "(no output)"
            return said + (f"  [{failures} failed in a row]" if failures else "  [passed]")
    return None


def show_machine(out: Output, m: dict[str, Any], fleet_label: str | None = None, check_output: str | None = None) -> None:
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
    if health_now(m):
        rows.insert(2, ("Health", health_now(m)))
    rows[rows.index(("Env", ", ".join(workload.get("env") or []) or None))] = ("Env", _env_shown(workload))
    rows[-3:-3] = _ravel_rows(m, workload) + ([("Last check", check_output)] if check_output else [])
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


def wait_started(app_: AppContext, fleet: str, m: Machine) -> None:
    """Wait until it runs; a start that failed (the image cannot be pulled...) fails at once with its reason."""
    from valyent_cli.api import MachineFailed
    from valyent_cli.cli.errors import CliError
    from valyent_cli.cli.exits import Exit

    try:
        m.wait("running", 60)
    except MachineFailed as exc:
        hint = failure_hint(app_, fleet, str(m.get("id")), exc.reason, (m.get("config") or {}).get("image"))
        raise CliError(str(exc), Exit.ERROR, hint=hint) from None


def state_now(m: Machine) -> str | None:
    """The machine's state as the API has it now, else from its newest event (a Ravel with the no-op cluster state
    cannot read machines); None if neither can be read."""
    from valyent_cli.api import NotFound, ValyentError
    from valyent_cli.cli.exitstatus import ordered

    try:
        return str(m.refresh().get("state"))
    except NotFound:
        return "destroyed"
    except ValyentError:
        pass
    try:
        return next((str(e.get("status")) for e in reversed(ordered(m.events()))), None)
    except ValyentError:
        return None
