"""`valyent machines run`: a one-shot machine, for CI: its logs live, its exit code as ours, gone with --rm.

The command takes every flag of `machines create`: its parameters are create's own (read from create's signature
by :func:`build`, which commands/machines.py calls to register the command), plus --rm and --timeout. The payload
is built by the same function as create's and deploy's (`cli/payload.py: create_flags`, `machine_payload`:
valyent.toml defaults, --config, checks), then handed to :func:`engine`.

The engine creates the machine, follows its log in a thread (stdout lines to stdout, stderr lines to stderr), and
in the main thread long-polls the machine until it stops; the exit code comes from the last `machine.exited`
event's payload (`{"stopped": {"exit_code": N}}`, as the sandbox and Ravel send it). Once it stopped, the rest of
the log is read once, without following, so no line is lost when the live stream lags behind.
"""

from __future__ import annotations

import inspect
import threading
import time
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from valyent_cli.cli.exitstatus import exit_code_of, ordered, shell_code
from valyent_cli.commands import machine_views as _views

if TYPE_CHECKING:
    from valyent_cli.api import Client, Machine
    from valyent_cli.cli.context import AppContext
    from valyent_cli.cli.output import Output

#: exit code after --timeout stopped the machine (as coreutils' timeout)
TIMED_OUT = 124
#: how long one long poll for the machine's stop lasts (seconds); the server caps it at 60
POLL = 30.0

HELP = """Run a command in a new machine until it exits, and exit with its exit code: for CI.

Takes every flag of `machines create` (and valyent.toml's defaults); the restart policy is `never` unless one is
given. The machine's log streams live from its start: its stdout lines to stdout, its stderr lines to stderr, and
nothing else on stdout. The exit code is the machine's own (128+N when a signal N killed it, as shells do).
--rm destroys the machine afterwards, whatever happened (after Ctrl-C too, which stops it first; Ctrl-C exits
130); --timeout stops it (its stop signal, then a kill) and exits 124. A machine that cannot start fails with the
server's reason (exit 1). --json prints the final machine object instead of the log. --detach does what
`create -q` does: it prints the id once the machine runs, and returns. The API takes no input: piped stdin is
refused (exit 2), as `machines exec` refuses it.

Examples:

  valyent machines run --rm --image alpine -- sh -c 'make test'

  valyent machines run --rm --timeout 10m --image python:3.12 -e CI=1 -- python -m pytest
"""


class _LogPump:
    """The machine's live log, printed from a thread: stdout entries to stdout, stderr entries to stderr, each as
    it arrives. ``finish`` stops it and prints what the full log holds beyond what was printed."""

    def __init__(self, client: Client, fleet: str, machine_id: str, out: Output) -> None:
        self._client = client
        self.out = out
        self._fleet = fleet
        self._id = machine_id
        from valyent_cli.api.logs import LogCursor

        self._lock = threading.Lock()
        self._cursor = LogCursor()  # what was printed, by time: a position goes wrong once retention prunes
        self._stopped = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._follow, name="valyent-run-logs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _emit(self, entry: dict[str, Any]) -> None:
        message = entry.get("message")
        self.out.log_message("" if message is None else str(message),
                             to_stderr=str(entry.get("source", "")).lower() == "stderr")

    def _follow(self) -> None:
        try:
            for entry in self._client.machines.follow_logs(self._fleet, self._id, idle_timeout=None,
                                                           until_destroyed=True):
                with self._lock:
                    if self._stopped:
                        return
                    self._emit(entry)
                    self._cursor.take(entry)
        except BaseException as exc:  # noqa: BLE001 - reported by finish, which reads the log again anyway
            self.error = exc

    def finish(self, client: Client) -> None:
        """Stop following; print the entries of the whole log after the last one printed (by time, not position);
        warn when the server's retention pruned entries that may not have been printed."""
        with self._lock:
            self._stopped = True
            for entry in self._cursor.after(client.machines.iter_logs(self._fleet, self._id)):
                self._emit(entry)
                self._cursor.take(entry)
            if self._cursor.pruned:
                self.out.warn(f"the server pruned the oldest lines of machine {self._id}'s log (its retention) "
                              "before they were all shown: lines after the last one printed live may be missing")
        self._client.close()


def _events(client: Client, fleet: str, machine_id: str) -> list[dict[str, Any]]:
    from valyent_cli.api import NotFound

    try:
        return ordered(list(client.machines.events(fleet, machine_id)))
    except NotFound:
        return []


def _outcome(events: list[dict[str, Any]]) -> tuple[str, Any] | None:
    """What ended the run, from the events so far: ("failed", reason), ("exited", code), or None (still going).

    An exit ends the run only when no start follows it (a restart policy may start the machine again)."""
    from valyent_cli.commands.machine_views import describe_event as _describe_event

    for event in reversed(events):
        kind = str(event.get("type"))
        if kind in ("machine.start_failed", "machine.prepare_failed"):
            return ("failed", _describe_event(event) or kind)
        if kind == "machine.exited":
            return ("exited", exit_code_of(event))
        if kind in ("machine.start", "machine.started", "machine.prepare", "machine.prepared"):
            return None
    return None


def _wait_for_end(client: Client, fleet: str, machine_id: str, deadline: float | None) -> tuple[str, Any] | None:
    """Long-poll until the machine has stopped for good; its outcome, or None at the deadline."""
    from valyent_cli.api import ValyentError
    from valyent_cli.api import TimeoutError as ApiTimeout

    while True:
        outcome = _outcome(_events(client, fleet, machine_id))
        state = None
        if outcome is not None:
            try:
                state = client.machines.get(fleet, machine_id).get("state")
            except ValyentError:
                state = "destroyed"
            if state in ("stopped", "destroying", "destroyed"):
                return outcome
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return None
        poll = POLL if remaining is None else max(min(POLL, remaining), 0.05)
        try:
            client.machines.wait(fleet, machine_id, "stopped", poll)
        except ApiTimeout:
            pass
        except ValyentError:
            time.sleep(min(0.2, poll))  # destroyed meanwhile (auto-destroy), or a passing error: read the events


def _stop(client: Client, fleet: str, machine_id: str) -> None:
    """Stop the machine (its stop signal, then a kill after its stop timeout) and wait until it has stopped."""
    from valyent_cli.api import ValyentError

    try:
        client.machines.stop(fleet, machine_id)
    except ValyentError:
        pass  # already stopped or stopping
    try:
        client.machines.wait(fleet, machine_id, "stopped", 90)
    except ValyentError:
        pass


def _remove(out: Output, client: Client, fleet: str, machine_id: str) -> None:
    from valyent_cli.api import NotFound, ValyentError

    try:
        client.machines.delete(fleet, machine_id, force=True)
    except NotFound:
        return
    except ValyentError as exc:
        if "destroy" not in str(exc):  # already destroyed (auto-destroy): nothing left to remove
            out.warn(f"could not destroy machine {machine_id}: {exc}")
            return
    if not out.quiet and not out.json:
        out.info(f"Destroyed machine {machine_id}")


def _notices(out: Output, machine: Machine) -> None:
    """What the server said beside the machine (the sandbox's process driver: the image is not run), as `create`
    says it: once, on stderr, not with -q."""
    for notice in [] if out.quiet else machine.notices:
        out.warn(notice)


def engine(
    app_: AppContext, out: Output, body: dict[str, Any], *, fleet: str | None, dry_run: bool, detach: bool,
    limit: float, rm: bool, timeout: float | None,
) -> None:
    """Run the machine `create` built the payload of (see the module docstring)."""
    from valyent_cli.cli import resolve
    from valyent_cli.cli.errors import CliError
    from valyent_cli.cli.exits import Exit

    body.pop("skip_start", None)  # run starts the machine, whatever valyent.toml says
    workload = body.setdefault("config", {}).setdefault("workload", {})
    restart = workload.setdefault("restart", {})
    if not restart:
        restart["policy"] = "never"
    if dry_run:
        out.data(body)
        return
    fleet_ref = resolve.fleet(app_, fleet)
    client = app_.connect()
    if detach:
        machine = client.machines.create(fleet_ref, body)
        _notices(out, machine)
        quiet = out.quiet
        out.quiet = True
        machine = _views.watch_start(app_, out, fleet_ref, machine, limit)
        out.quiet = quiet
        if out.json:
            out.data(machine)
        else:
            out.ids([str(machine.get("id"))])
        return

    deadline = None if timeout is None else time.monotonic() + timeout
    machine: Machine | None = None
    pump: _LogPump | None = None
    code: int = Exit.ERROR
    try:
        machine = client.machines.create(fleet_ref, body)
        _notices(out, machine)
        machine_id = str(machine.get("id"))
        if not out.quiet and not out.json:
            out.info(f"Running machine {machine_id} in fleet {fleet_ref}")
        if not out.json:
            pump = _LogPump(app_.settings.client(debug_hook=app_.debug_hook), fleet_ref, machine_id, out)
            pump.start()
        outcome = _wait_for_end(client, fleet_ref, machine_id, deadline)
        if outcome is None:
            _stop(client, fleet_ref, machine_id)
            if pump is not None:
                pump.finish(client)
                pump = None
            out.warn(f"machine {machine_id} ran longer than --timeout ({timeout:g} s): stopped it")
            code = TIMED_OUT
        else:
            if pump is not None:
                pump.finish(client)
                pump = None
            kind, value = outcome
            if kind == "failed":
                raise CliError(f"machine {machine_id} could not start: {value}", Exit.ERROR,
                               hint=f"see its events: valyent machines events {machine_id} --fleet {fleet_ref}")
            code = shell_code(value)
            if value is None or code != value and not 0 <= value <= 255:
                out.warn(f"machine {machine_id} exited without a usable exit code ({value}): exiting {code}")
    except KeyboardInterrupt:
        if machine is not None:
            out.note(f"Stopping machine {machine.get('id')}...")
            try:
                _stop(client, fleet_ref, str(machine.get("id")))
            except KeyboardInterrupt:
                pass  # a second Ctrl-C: skip the graceful stop (--rm still destroys it, by force)
            if rm:
                _remove(out, client, fleet_ref, str(machine.get("id")))
        raise
    except BaseException:
        if machine is not None and rm:
            _remove(out, client, fleet_ref, str(machine.get("id")))
        raise
    finally:
        if pump is not None:
            try:
                pump.finish(client)
            except Exception:  # noqa: BLE001 - the log is a courtesy once the run has failed
                pass
    final: Any = machine
    if rm:
        _remove(out, client, fleet_ref, str(machine.get("id")))
    if out.json:
        from valyent_cli.api import ValyentError

        try:
            final = client.machines.get(fleet_ref, str(machine.get("id")))
        except ValyentError:
            pass
        out.data(final)
    raise typer.Exit(code)


def _option(annotation: Any, **changes: Any) -> Any:
    """``Annotated[T, typer.Option(...)]`` with some of the option's fields changed (a copy: create's stays)."""
    import copy

    base, info = typing.get_args(annotation)[0], copy.copy(typing.get_args(annotation)[1])
    for key, value in changes.items():
        setattr(info, key, value)
    return Annotated[base, info]


def build(create: Callable[..., Any]) -> Callable[..., Any]:
    """The `machines run` command: ``create``'s parameters (minus --skip-start) plus --rm and --timeout; it builds
    the payload as create does and runs :func:`engine`. commands/machines.py registers it."""
    hints = typing.get_type_hints(create, include_extras=True)
    params: list[inspect.Parameter] = []
    for p in inspect.signature(create).parameters.values():
        if p.name == "skip_start":  # run starts the machine: create's default (None) stands
            continue
        annotation = hints.get(p.name, p.annotation)
        if p.name == "detach":
            annotation = _option(annotation, help="Print the machine's id once it runs and return, as `create -q`.")
        elif p.name == "restart":
            annotation = _option(annotation, help="Restart policy: always, on-failure or never (default never).")
        elif p.name == "quiet":
            annotation = _option(annotation, help="Print only the machine's output, no notes; with --detach, its id.")
        elif p.name == "command":
            annotation = _option(annotation, help="The command to run, after `--` (e.g. -- sh -c 'make test').")
        params.append(p.replace(annotation=annotation))
        if p.name == "detach":
            params += [
                inspect.Parameter("rm", p.kind, default=False, annotation=Annotated[
                    bool, typer.Option("--rm", help="Destroy the machine afterwards, whatever happened.")]),
                inspect.Parameter("timeout", p.kind, default=None, annotation=Annotated[
                    str | None, typer.Option("--timeout", metavar="DURATION", show_default=False,
                                             help="Stop the machine after this long (30s, 10m, 1h) and exit 124.")]),
            ]

    def run(**kwargs: Any) -> None:
        from valyent_cli.cli import payload as pl
        from valyent_cli.cli import validate as v
        from valyent_cli.cli.errors import UsageError

        ctx: typer.Context = kwargs["ctx"]
        rm, timeout = kwargs.pop("rm"), kwargs.pop("timeout")
        seconds = None
        if timeout is not None:
            seconds = v.duration(timeout, "--timeout")
            if seconds <= 0:
                raise UsageError("--timeout must be more than 0")
        if kwargs.get("detach") and (rm or timeout is not None):
            raise UsageError("--detach returns once the machine runs: it cannot be combined with --rm or --timeout")
        if kwargs.get("json") and kwargs.get("quiet"):
            raise UsageError("choose one of --json and -q/--quiet")
        if not kwargs.get("dry_run") and v.stdin_has_data():
            raise UsageError("machines run cannot pass stdin to the command (the API takes none): put the data in "
                             "the command or --env, or create the machine and send it with "
                             "`valyent fs put MACHINE - PATH`")
        app_: AppContext = ctx.obj
        flags = pl.create_flags(kwargs)
        limit = v.duration(kwargs["wait_timeout"], "--wait-timeout")
        body = pl.app_payload(app_, flags, config_file=kwargs.get("config"), ask_nodes=not kwargs.get("dry_run"))
        out = app_.output(json=kwargs.get("json", False), quiet=kwargs.get("quiet", False))
        engine(app_, out, body, fleet=kwargs.get("fleet"), dry_run=kwargs.get("dry_run", False),
               detach=kwargs.get("detach", False), limit=limit, rm=rm, timeout=seconds)

    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__doc__ = HELP
    return run

