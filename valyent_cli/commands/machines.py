"""`valyent machines`: create, inspect, control and run commands in machines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from valyent_cli.cli import complete
from valyent_cli.cli.options import FleetOpt, JsonOpt, QuietOpt, YesOpt
from valyent_cli.commands import machine_views as views
from valyent_cli.commands import run as _run

if TYPE_CHECKING:
    from valyent_cli.api import Machine
    from valyent_cli.cli.context import AppContext
    from valyent_cli.cli.output import Output

app = typer.Typer(
    name="machines",
    short_help="Create, list and control machines.",
    help="Manage machines: create, list, start, stop, wait, exec and more.\n\n"
    "Example: valyent machines create --image nginx --env PORT=8080",
    no_args_is_help=True,
)

MachineArg = Annotated[str, typer.Argument(metavar="MACHINE", help="Machine id, or a unique prefix of it.", show_default=False, autocompletion=complete.machines)]
MachinesArg = Annotated[list[str], typer.Argument(metavar="MACHINE", help="Machine ids or unique prefixes.", show_default=False, autocompletion=complete.machines)]
StateOpt = Annotated[
    str, typer.Option("--state", "-s", metavar="STATE", help="State to wait for: running, stopped or destroyed.", autocompletion=complete.states)
]
TimeoutOpt = Annotated[
    str, typer.Option("--timeout", "-t", metavar="DURATION", help="How long to wait: seconds, or 30s, 5m, 1h.")
]


def _setup(ctx: typer.Context, fleet: str | None, *, json: bool = False, quiet: bool = False) -> tuple[AppContext, Output, str]:
    from valyent_cli.cli import resolve

    app_: AppContext = ctx.obj
    out = app_.output(json=json, quiet=quiet)
    return app_, out, resolve.fleet(app_, fleet)


def _machine(app_: AppContext, fleet: str, ref: str, needs: str = "") -> Machine:
    """By id or prefix; a command that ``needs`` more than the id fails when machines cannot be read (cli/resolve)."""
    from valyent_cli.cli import resolve

    return resolve.machine(app_, fleet, ref, id_only=not needs, needs=needs)


# -- create -------------------------------------------------------------------------------------------------------
@app.command(
    "create",
    context_settings={"allow_interspersed_args": False},
)
def create(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(metavar="COMMAND", help="The command to run, after `--` (e.g. -- python -m http.server 8080).", show_default=False),
    ] = None,
    image: Annotated[str | None, typer.Option("--image", "-i", metavar="IMAGE", help="Container image, e.g. nginx:latest.", show_default=False)] = None,
    region: Annotated[str | None, typer.Option("--region", metavar="REGION", help="Region (default: the profile's, else gra-1; on a self-hosted Ravel the one region of its nodes).", show_default=False)] = None,
    cpus: Annotated[int | None, typer.Option("--cpus", metavar="N", help="Number of vCPUs (default 1).", show_default=False)] = None,
    memory: Annotated[str | None, typer.Option("--memory", "-m", metavar="SIZE", help="Memory: megabytes, or 512mb, 1gb (default 512).", show_default=False)] = None,
    cpu_kind: Annotated[str | None, typer.Option("--cpu-kind", metavar="KIND", help="CPU kind: one of the server's templates, e.g. shared, or eco and std on Ravel's example config (default: the profile's cpu_kind, else shared).", show_default=False, autocompletion=complete.cpu_kinds)] = None,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", metavar="KEY=VALUE", help="Environment variable KEY=VALUE (repeatable).", show_default=False)] = None,
    env_file: Annotated[str | None, typer.Option("--env-file", metavar="FILE", help="File of KEY=VALUE lines.", show_default=False)] = None,
    cmd: Annotated[str | None, typer.Option("--cmd", metavar="COMMAND", help="The command as one string, split like a shell.", show_default=False)] = None,
    entrypoint: Annotated[str | None, typer.Option("--entrypoint", metavar="COMMAND", help="Entrypoint, split like a shell.", show_default=False)] = None,
    user: Annotated[str | None, typer.Option("--user", metavar="USER", help="User to run as.", show_default=False)] = None,
    restart: Annotated[str | None, typer.Option("--restart", metavar="POLICY", help="Restart policy: always, on-failure or never.", show_default=False, autocompletion=complete.restart_policies)] = None,
    max_retries: Annotated[int | None, typer.Option("--max-retries", metavar="N", help="Restarts allowed with on-failure.", show_default=False)] = None,
    auto_destroy: Annotated[bool | None, typer.Option("--auto-destroy/--no-auto-destroy", help="Destroy the machine when it exits.", show_default=False)] = None,
    skip_start: Annotated[bool | None, typer.Option("--skip-start", help="Create it without starting it.", show_default=False)] = None,
    stop_signal: Annotated[str | None, typer.Option("--stop-signal", metavar="SIGNAL", help="Signal sent to stop it (default SIGTERM).", show_default=False, autocompletion=complete.signals)] = None,
    stop_timeout: Annotated[str | None, typer.Option("--stop-timeout", metavar="DURATION", help="Time before SIGKILL when stopping: 10, 10s (0-30s).", show_default=False)] = None,
    enable_gateway: Annotated[bool | None, typer.Option("--enable-gateway", help="Enable the machine's gateway.", show_default=False)] = None,
    secret: Annotated[list[str] | None, typer.Option("--secret", metavar="NAME:ENV_VAR", help="Put a secret of the namespace in the environment as ENV_VAR (repeatable).", show_default=False, autocompletion=complete.secrets)] = None,
    health_cmd: Annotated[str | None, typer.Option("--health-cmd", metavar="COMMAND", help="Health check command, split like a shell (exit 0: healthy).", show_default=False)] = None,
    health_interval: Annotated[str | None, typer.Option("--health-interval", metavar="DURATION", help="Time between health checks (server default 30s).", show_default=False)] = None,
    health_timeout: Annotated[str | None, typer.Option("--health-timeout", metavar="DURATION", help="Time a health check may take (server default 5s).", show_default=False)] = None,
    health_retries: Annotated[int | None, typer.Option("--health-retries", metavar="N", help="Failures in a row before unhealthy (server default 3).", show_default=False)] = None,
    volume: Annotated[list[str] | None, typer.Option("--volume", metavar="NAME:PATH", help="Mount a disk at PATH (repeatable).", show_default=False)] = None,
    network: Annotated[list[str] | None, typer.Option("--network", metavar="NAME=IP/PREFIX", help="Join a private network with this address, e.g. backend=10.0.1.2/24 (repeatable).", show_default=False)] = None,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", metavar="KEY=VALUE", help="Label (repeatable; at most 64, key <= 63, value <= 255 characters).", show_default=False)] = None,
    annotation: Annotated[list[str] | None, typer.Option("--annotation", metavar="KEY=VALUE", help="Annotation (repeatable; at most 32).", show_default=False)] = None,
    config: Annotated[str | None, typer.Option("--config", metavar="FILE", help="A JSON or TOML create payload; flags override it.", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the payload and send nothing.")] = False,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Return at once instead of waiting until it runs.")] = False,
    wait_timeout: Annotated[str, typer.Option("--wait-timeout", metavar="DURATION", help="How long to wait for it to run.")] = "120s",
    fleet: FleetOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Create a machine and wait until it runs.

    The states and events show on stderr as they happen; the machine goes to stdout (`-q`: its id only).

    Examples:

      valyent machines create --image nginx

      ID=$(valyent machines create -q --image python:3.12 -e PORT=8080 -- python -m http.server 8080)

      valyent machines create --image nginx --cpu-kind eco --label app=web --secret db-password:DB_PASSWORD --health-cmd "curl -fs localhost" --volume data:/data --network backend=10.0.1.2/24
    """
    from valyent_cli.cli import payload as pl
    from valyent_cli.cli import validate as v

    app_: AppContext = ctx.obj
    flags = pl.create_flags(locals())  # this command's parameters, by name (pl.FLAG_PARAMS)
    limit = v.duration(wait_timeout, "--wait-timeout")
    body = pl.app_payload(app_, flags, config_file=config, ask_nodes=not dry_run)
    out = app_.output(json=json, quiet=quiet)
    if dry_run:
        out.data(body)
        return
    from valyent_cli.cli import resolve

    fleet_ref = resolve.fleet(app_, fleet)
    try:
        machine = app_.connect().machines.create(fleet_ref, body)
    except KeyboardInterrupt:
        out.warn("interrupted before the server answered: the machine may have been created; "
                 f"look with `valyent machines list --fleet {fleet_ref}`")
        raise
    for notice in [] if quiet else machine.notices:  # the sandbox's process driver: the image is not run
        out.warn(notice)
    if not quiet:
        out.info(f"Created machine {machine.get('id')} in fleet {fleet_ref}")
    if not detach and not body.get("skip_start"):
        try:
            machine = views.watch_start(app_, out, fleet_ref, machine, limit)
        except KeyboardInterrupt:
            out.warn(f"machine {machine.get('id')} was created and keeps starting; "
                     f"see it with `valyent machines show {machine.get('id')} --fleet {fleet_ref}`")
            raise
    if json or quiet:
        out.fields(machine, [])
    else:
        views.show_machine(out, machine, resolve.fleet_label(app_, fleet_ref, machine.get("fleet")))


# -- list, show -----------------------------------------------------------------------------------------------------
@app.command("list")
def list_(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include destroyed machines.")] = False,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", metavar="KEY=VALUE", help="Only machines with this label (repeatable: all of them).", show_default=False)] = None,
    fleet: FleetOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List the machines of a fleet.

    Examples:

      valyent machines list --json | jq -r '.[] | select(.state == "running") | .id'

      valyent machines list --label app=web
    """
    wanted: dict[str, str] = {}
    if label:  # the checks' module only when there is something to check
        from valyent_cli.cli.metadata import pairs

        wanted = pairs(label, "--label")
    app_, out, fleet_ref = _setup(ctx, fleet, json=json, quiet=quiet)
    if json:  # printed verbatim: no Machine objects, columns or health scan for thousands of machines
        items, body = app_.connect().machines.list_answer(fleet_ref, destroyed=all_, labels=wanted or None)
        out.data(items, body=body)
        return
    machines = app_.connect().machines.list(fleet_ref, destroyed=all_, labels=wanted or None)
    columns = views.columns()
    if any(m.get("health") not in (None, "", "unknown") or ((m.get("config") or {}).get("workload") or {}).get("health_check")
           for m in machines):
        from valyent_cli.cli.output import Column, state_style

        columns.insert(2, Column("HEALTH", lambda m: views.health_now(m) or "-", style=state_style))
    empty = f"No machines in fleet {fleet_ref}. Create one: valyent machines create --image nginx"
    if wanted:
        empty = f"No machines with {' '.join(f'{k}={v}' for k, v in wanted.items())} in fleet {fleet_ref}."
    out.table(machines, columns, empty=empty)


@app.command("show")
def show(ctx: typer.Context, machine: MachineArg, fleet: FleetOpt = None, json: JsonOpt = False) -> None:
    """Show a machine.

    Example: valyent machines show 01jqb7x4c9ts
    """
    from valyent_cli.cli import resolve

    app_, out, fleet_ref = _setup(ctx, fleet, json=json)
    found = _machine(app_, fleet_ref, machine, "there is nothing to show without it (its events and versions can be read)")
    checked = not json and ((found.get("config") or {}).get("workload") or {}).get("health_check")
    views.show_machine(out, found, None if json else resolve.fleet_label(app_, fleet_ref, found.get("fleet")),
                       views.last_check(app_.connect(), fleet_ref, str(found.get("id"))) if checked else None)


# -- lifecycle ------------------------------------------------------------------------------------------------------
#: states in which stop has nothing to do (a second stop succeeds, as scripts expect)
NOT_RUNNING = ("created", "stopped", "destroying", "destroyed")
#: states in which start has nothing to do (a second start succeeds too)
ALREADY_STARTED = ("starting", "running")


def _nothing_to_stop(machine_id: Any, state: Any) -> str:
    if state == "created":
        return f"Machine {machine_id} was never started: nothing to stop"
    return f"Machine {machine_id} is already {state}: nothing to stop"


@app.command("start")
def start(ctx: typer.Context, machines: MachinesArg, fleet: FleetOpt = None,
          wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until each runs.")] = True,
          json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Start stopped machines. A machine already running is left as it is, with a note (exit 0). With --json, the
    machines after the start (one: an object; several: an array).

    Example: valyent machines start 01jqb7x4c9ts 01jqb7x4c9tv
    """
    from valyent_cli.api import ApiError

    app_, out, fleet_ref = _setup(ctx, fleet, json=json, quiet=quiet)
    done = []
    for ref in machines:
        m = _machine(app_, fleet_ref, ref)
        done.append(m)
        if m.get("state") in ALREADY_STARTED:
            out.info(f"Machine {m.get('id')} is already {m.get('state')}: nothing to start")
            continue
        try:
            m.start()
        except ApiError as exc:  # it started meanwhile: done, as a second start is
            if exc.status >= 500 or (state := views.state_now(m)) not in ALREADY_STARTED:
                raise
            out.info(f"Machine {m.get('id')} is already {state}: nothing to start")
            continue
        if wait:
            views.wait_started(app_, fleet_ref, m)
        if not quiet:
            out.done(f"Started {m.get('id')}")
    _print_after(out, done)


@app.command("stop")
def stop(
    ctx: typer.Context,
    machines: MachinesArg,
    signal: Annotated[str | None, typer.Option("--signal", metavar="SIGNAL", help="Signal to send (default: the machine's stop signal).", show_default=False, autocompletion=complete.signals)] = None,
    timeout: Annotated[str | None, typer.Option("--timeout", metavar="DURATION", help="Time before SIGKILL: 10, 10s (0-30s).", show_default=False)] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until each has stopped.")] = True,
    fleet: FleetOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Stop running machines. A machine that is not running is left as it is, with a note (exit 0). With --json,
    the machines after the stop (one: an object; several: an array).

    Example: valyent machines stop 01jqb7x4c9ts --signal SIGINT --timeout 10
    """
    from valyent_cli.api import ApiError
    from valyent_cli.cli import validate as v

    sig = v.signal_name(signal) if signal is not None else None
    seconds = v.whole_seconds(timeout, "--timeout", minimum=0, maximum=30) if timeout is not None else None
    app_, out, fleet_ref = _setup(ctx, fleet, json=json, quiet=quiet)
    done = []
    for ref in machines:
        m = _machine(app_, fleet_ref, ref)
        done.append(m)
        if m.get("state") in NOT_RUNNING:
            out.info(_nothing_to_stop(m.get("id"), m.get("state")))
            continue
        try:
            m.stop(signal=sig, timeout=seconds)
        except ApiError as exc:  # it stopped meanwhile: done, as a second stop is (Ravel masks why as a 500)
            masked = exc.status == 500 and "Failed to stop machine" in exc.message  # ravel/orchestrator/machines.go
            if (exc.status >= 500 and not masked) or (state := views.state_now(m)) not in NOT_RUNNING:
                raise
            out.info(_nothing_to_stop(m.get("id"), state))
            continue
        if wait:
            m.wait("stopped", (seconds or 30) + 30)
        if not quiet:
            out.done(views.stopped(m) if wait else f"Stopped {m.get('id')}")
    _print_after(out, done)


def _print_after(out: Output, machines: list[Machine]) -> None:
    """What start and stop print on stdout: with --json the machines as they are now, with -q their ids."""
    if out.quiet:
        out.ids(str(m.get("id")) for m in machines)
    elif out.json:
        now = [m.refresh() for m in machines]
        out.data(now[0] if len(now) == 1 else now)


@app.command("restart")
def restart(ctx: typer.Context, machines: MachinesArg, fleet: FleetOpt = None) -> None:
    """Stop then start machines, waiting for each step.

    Example: valyent machines restart 01jqb7x4c9ts
    """
    app_, out, fleet_ref = _setup(ctx, fleet)
    for ref in machines:
        m = _machine(app_, fleet_ref, ref)
        if m.get("state") not in ("stopped", "created"):
            m.stop()
            m.wait("stopped", 90)
        m.start()
        m.wait("running", 60)
        out.done(f"Restarted {m.get('id')}")


@app.command("delete")
def delete(
    ctx: typer.Context,
    machines: MachinesArg,
    force: Annotated[bool, typer.Option("--force", help="Destroy running machines too.")] = False,
    yes: YesOpt = False,
    fleet: FleetOpt = None,
) -> None:
    """Delete (destroy) machines. Running ones need --force, or stop them first; destroyed ones get a note (exit 0).

    Example: valyent machines delete 01jqb7x4c9ts --force --yes
    """
    from valyent_cli.api import ApiError
    from valyent_cli.cli.errors import CliError
    from valyent_cli.cli.exits import Exit
    from valyent_cli.cli.resolve import confirm, require_yes

    require_yes(yes, "delete machines")

    app_, out, fleet_ref = _setup(ctx, fleet)
    resolved = [_machine(app_, fleet_ref, ref) for ref in machines]
    question, force = views.delete_question(resolved, force=force, yes=yes)  # a live one: offers to stop it
    confirm(out, question, yes)
    for m in resolved:
        if m.get("state") == "destroyed":
            out.info(f"Machine {m.get('id')} is already destroyed: nothing to delete")
            continue
        try:
            m.delete(force=force)
        except ApiError as exc:
            if exc.status >= 500:
                raise
            state = views.state_now(m)
            if state in ("destroyed", "destroying"):
                out.info(f"Machine {m.get('id')} is already {state}: nothing to delete")
                continue
            if not force and state in ("created", "preparing", "starting", "running", "stopping"):
                raise CliError(f"machine {m.get('id')} is {state}: stop it first, or delete it with --force",
                               Exit.ERROR, hint=f"valyent machines delete {m.get('id')} --force --yes") from None
            raise
        out.done(f"Deleted {m.get('id')}")


@app.command("wait")
def wait(
    ctx: typer.Context,
    machine: MachineArg,
    state: StateOpt = "running",
    timeout: TimeoutOpt = "60s",
    healthy: Annotated[bool, typer.Option("--healthy", help="Wait until its health check passes (health: healthy).")] = False,
    fleet: FleetOpt = None,
) -> None:
    """Wait until a machine reaches a state (exit 5 if it does not in time). Any timeout length works.

    Examples:

      valyent machines wait 01jqb7x4c9ts --state stopped --timeout 10m

      valyent machines wait 01jqb7x4c9ts --healthy --timeout 2m
    """
    from valyent_cli.cli import validate as v

    v.choice(state, "--state", v.STATES)
    seconds = v.duration(timeout, "--timeout")
    if seconds <= 0:
        from valyent_cli.cli.errors import UsageError

        raise UsageError("--timeout must be more than 0")
    app_, out, fleet_ref = _setup(ctx, fleet)
    m = _machine(app_, fleet_ref, machine)
    from valyent_cli.api import TimeoutError as WaitTimeout
    from valyent_cli.cli.errors import CliError
    from valyent_cli.cli.exits import Exit

    if healthy:
        with out.progress(f"Waiting for {m.get('id')} to be healthy..."):
            try:
                m.wait_healthy(seconds)
            except WaitTimeout as exc:
                output = views.last_check(app_.connect(), fleet_ref, str(m.get("id")))
                if getattr(exc, "url", None) or not output:
                    raise
                raise CliError(f"{exc}; its last health check said: {output}", Exit.TIMEOUT) from None
        out.done(f"Machine {m.get('id')} is healthy")
        return
    with out.progress(f"Waiting for {m.get('id')} to be {state}..."):
        try:
            m.wait(state, seconds)
        except WaitTimeout as exc:
            if getattr(exc, "url", None) and "did not reach" not in str(exc):
                raise  # a request that timed out, not the wait
            from valyent_cli.cli.humanize import span

            raise CliError(f"machine {m.get('id')} is not {state} after {span(seconds)}", Exit.TIMEOUT,
                           hint=f"wait longer: valyent machines wait {m.get('id')} --state {state} --timeout 10m") from None
    out.done(f"Machine {m.get('id')} is {state}")


@app.command("events")
def events(ctx: typer.Context, machine: MachineArg, fleet: FleetOpt = None, json: JsonOpt = False) -> None:
    """List a machine's events, oldest first: time, type, state, origin and what happened.

    Example: valyent machines events 01jqb7x4c9ts
    """
    from valyent_cli.cli.output import Column, state_style
    from valyent_cli.cli.humanize import clock

    app_, out, fleet_ref = _setup(ctx, fleet, json=json)
    m = _machine(app_, fleet_ref, machine)
    from valyent_cli.cli.exitstatus import ordered

    items = ordered(m.events())  # Ravel's come in no order (no ORDER BY)
    one_day = len({clock(e.get("timestamp"))[:10] for e in items}) == 1  # then the time of day says it (UTC)
    out.table(
        items,
        [
            Column("TIME", lambda e: clock(e.get("timestamp"))[11 if one_day else 0:]),
            Column("TYPE", lambda e: e.get("type")),
            Column("STATE", lambda e: e.get("status"), style=state_style),
            Column("ORIGIN", lambda e: e.get("origin"), drop=1),
            Column("DETAILS", views.describe_event, wrap=True),
        ],
        empty="No events.",
    )


@app.command(
    "exec",
    context_settings={"ignore_unknown_options": True},
)
def exec_(
    ctx: typer.Context,
    machine: MachineArg,
    command: Annotated[list[str], typer.Argument(metavar="COMMAND", help="The command and its arguments, after `--`.", show_default=False)],
    timeout: Annotated[str, typer.Option("--timeout", "-t", metavar="DURATION", help="How long the command may run: 30s, 5m...")] = "60s",
    fleet: FleetOpt = None,
    json: JsonOpt = False,
) -> None:
    """Run a command in a machine: its stdout to stdout, its stderr to stderr, its exit code as ours.

    If the command cannot be run at all, the exit code is 255 (as ssh; a machine that does not exist: 4); one
    stopped by --timeout exits 124. The
    API returns the output when the command ends, and takes no input: piped stdin is refused (send data with
    `valyent fs put`). With --json, the result object is printed and the exit code is still the command's.

    Example: valyent machines exec 01jqb7x4c9ts -- ls -la /app
    """
    from valyent_cli.cli import validate as v
    from valyent_cli.cli.errors import UsageError
    from valyent_cli.cli.exits import Exit

    seconds = v.duration(timeout, "--timeout")
    if seconds <= 0:
        raise UsageError("--timeout must be more than 0")
    argv = [v.text(a, "COMMAND") for a in command]
    if v.stdin_has_data():
        raise UsageError("machines exec cannot pass stdin to the command (the API takes none): "
                         "send the data with `valyent fs put MACHINE - PATH`, then read it from PATH")
    app_ = ctx.obj
    out = app_.output(json=json)
    m: Machine | None = None
    try:
        _, out, fleet_ref = _setup(ctx, fleet, json=json)
        m = _machine(app_, fleet_ref, machine)
        result = m.exec(argv, timeout_ms=int(seconds * 1000))
    except KeyboardInterrupt:
        if m is not None:  # the API cannot stop a command it runs: say so
            out.warn(f"the command goes on in machine {m.get('id')} until it ends or its --timeout ({timeout}) "
                     "stops it: the API cannot stop it from here")
        raise
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - exec's own failures exit 255, after the usual message
        from valyent_cli.cli.errors import handle

        code = handle(exc)  # not found (4), auth (3), bad usage (2) keep their codes, as for every command
        raise typer.Exit(code if code in (Exit.USAGE, Exit.AUTH, Exit.NOT_FOUND) else Exit.EXEC_FAILED) from None
    code = result.get("exit_code")
    if getattr(result, "from_headers", False):  # a stock Ravel (api/machines.py: exec_result_from_headers)
        out.warn("this server sends exec output in HTTP headers, which cannot hold newlines (they show as spaces), "
                 "and returns no stderr")
        if code == -1:  # initd/exec/processes.go: killed at timeout_ms, the process has no exit status
            code = 124  # as the sandbox and timeout(1): stopped at --timeout
    code = code if isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255 else Exit.EXEC_FAILED
    if json:
        out.data(result)
        raise typer.Exit(code)
    out.command_output(result.get("stdout") or "", result.get("stderr") or "")
    raise typer.Exit(code)


@app.command("enable-gateway")
def enable_gateway(ctx: typer.Context, machine: MachineArg, fleet: FleetOpt = None) -> None:
    """Enable a machine's gateway.

    Example: valyent machines enable-gateway 01jqb7x4c9ts
    """
    app_, out, fleet_ref = _setup(ctx, fleet)
    m = _machine(app_, fleet_ref, machine)
    m.enable_gateway()
    out.done(f"Gateway enabled on {m.get('id')}")


@app.command("disable-gateway")
def disable_gateway(ctx: typer.Context, machine: MachineArg, fleet: FleetOpt = None) -> None:
    """Disable a machine's gateway.

    Example: valyent machines disable-gateway 01jqb7x4c9ts
    """
    app_, out, fleet_ref = _setup(ctx, fleet)
    m = _machine(app_, fleet_ref, machine)
    m.disable_gateway()
    out.done(f"Gateway disabled on {m.get('id')}")


@app.command("label")
def label(
    ctx: typer.Context,
    machine: MachineArg,
    changes: Annotated[list[str], typer.Argument(metavar="KEY=VALUE|KEY-", help="Labels to set (KEY=VALUE) or remove (KEY-).", show_default=False)],
    fleet: FleetOpt = None,
    json: JsonOpt = False,
) -> None:
    """Set or remove a machine's labels (kubectl's syntax), keeping the others.

    Example: valyent machines label 01jqb7x4c9ts tier=web env-
    """
    from valyent_cli.cli import metadata as meta

    to_set, to_remove = meta.edits(changes)
    app_, out, fleet_ref = _setup(ctx, fleet, json=json)
    m = _machine(app_, fleet_ref, machine, "its labels must be read to change some (the server replaces them all): nothing was changed")
    updated = m.update_metadata(meta.merged(m.get("metadata"), to_set, to_remove))
    if json:
        out.data(updated)
        return
    out.done(f"Labels of {m.get('id')}: {meta.show((updated.get('metadata') or {}).get('labels')) or 'none'}")


@app.command("versions")
def versions(ctx: typer.Context, machine: MachineArg, fleet: FleetOpt = None, json: JsonOpt = False,
             quiet: QuietOpt = False) -> None:
    """List a machine's versions: each configuration it has had, with the resources it was given.

    Example: valyent machines versions 01jqb7x4c9ts --json | jq '.[-1].config'
    """
    app_, out, fleet_ref = _setup(ctx, fleet, json=json, quiet=quiet)
    m = _machine(app_, fleet_ref, machine)
    out.table(m.versions(), views.version_columns(m.get("machine_version")), empty="No versions.")

# `machines run` takes every flag of `create`: its command is built from create's signature (commands/run.py).
run = app.command("run", context_settings={"allow_interspersed_args": False})(_run.build(create))
