"""`valyent logs [MACHINE]`: a machine's log, or the whole fleet's interleaved by time; `-f` follows it live.

This module is the command: options, filters, finding the machines. The engine that prints, merges, spools and
follows the logs is :class:`valyent_cli.cli.logmerge.MergedLogPrinter`.
"""

# No `from __future__ import annotations` here: typer reads the annotations of the commands it builds on every
# run, and each string annotation costs a compile() (~50 µs); real ones cost nothing then (issue 16).
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from valyent_cli.cli import complete, resolve
from valyent_cli.cli.errors import UsageError
from valyent_cli.cli.options import FleetOpt

if TYPE_CHECKING:
    from valyent_cli.cli.context import AppContext
    from valyent_cli.cli.output import Output

    #: a predicate on (entry, its time in Unix seconds)
    Keep = Callable[[dict[str, Any], float | None], bool]

# A group with no subcommands whose callback is the command, so that `valyent logs [MACHINE]` works: options may
# come after MACHINE, and the usage line shows no COMMAND.
app = typer.Typer(
    name="logs",
    short_help="Print or follow the logs of machines.",
    subcommand_metavar="",
    context_settings={"allow_interspersed_args": True},
)

SOURCES = ("stdout", "stderr")
#: how long a silent live stream is trusted before it is reopened (seconds); env VALYENT_STREAM_IDLE_TIMEOUT
DEFAULT_IDLE_TIMEOUT = 120.0


def parse_since(value: str, now: float) -> float:
    """The cutoff in Unix seconds: a duration back from now (`10m`, `2h`, `1h30m`, `30s`, `1d`) or an RFC3339 time."""
    from valyent_cli.cli import validate
    from valyent_cli.cli.humanize import parse_time

    if validate.is_duration(value) and not value.strip().isdigit():
        return now - validate.duration(value, "--since")
    moment = parse_time(value) if re.match(r"\s*\d{4}-\d{2}-\d{2}", value) else None
    if moment is None:
        raise UsageError(
            f"--since: {value!r} is neither a duration (like 30s, 10m, 2h, 1d, 1h30m) nor an RFC3339 time "
            "(like 2024-05-01T12:00:00Z)"
        )
    return moment


def _idle_timeout() -> float | None:
    raw = os.environ.get("VALYENT_STREAM_IDLE_TIMEOUT")
    if raw is None or not raw.strip():
        return DEFAULT_IDLE_TIMEOUT
    from valyent_cli.durations import parse

    value = parse(raw)
    if value is None or not value > 0:
        raise UsageError(f"VALYENT_STREAM_IDLE_TIMEOUT must be a positive duration (seconds, or 30s, 2m), not {raw!r}")
    return value


@app.callback(invoke_without_command=True)
def logs(
    ctx: typer.Context,
    machine: Annotated[
        str | None,
        typer.Argument(
            metavar="MACHINE", help="Machine id or unique id prefix (default: every machine of the fleet).",
            show_default=False, autocompletion=complete.machines,
        ),
    ] = None,
    fleet: FleetOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="TIME", help="Only lines newer than a duration (30s, 10m, 2h, 1d) or an RFC3339 time.",
                     show_default=False),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--source", metavar="STREAM", help="Only lines the machine wrote to this stream: stdout or stderr (lines that name no stream, as a Ravel node's, are all printed, with a note).", show_default=False,
                     autocompletion=complete.log_sources),
    ] = None,
    json: Annotated[
        bool, typer.Option("--json", help="One log entry a line (NDJSON), each exactly as the API sent it.")
    ] = False,
    no_prefix: Annotated[
        bool, typer.Option("--no-prefix", help="Without a machine, leave out the machine id at the start of lines.")
    ] = False,
    exit_with_machine: Annotated[
        bool, typer.Option("--exit-with-machine", help="With -f and a machine: stop when it exits, with its exit code.")
    ] = False,
) -> None:
    """Print the logs of a machine, or of the whole fleet interleaved by time; -f follows them live.

    Prints the log so far and exits; with -f, keeps printing new lines until Ctrl-C, reconnecting (without
    repeating or losing a line) when the stream drops; when the machine exits, says so on stderr (and with
    --exit-with-machine, stops there with its exit code). Lines are `TIME MACHINE message` (TIME in ISO-8601 UTC with milliseconds; MACHINE only for a whole fleet: the
    first 12 characters of its id, more when two machines share them).
    With --json, one log entry a line (NDJSON), each exactly as the API sent it; for a whole fleet, with its machine's
    id added first, as `machine_id`.

    Examples:

    \b
      valyent logs 01hx3kq2m8vd            # one machine's log so far
      valyent logs -f --since 10m    # the whole fleet, live, starting 10 minutes back
      valyent logs 01hx3kq2m8vd --json --source stderr | jq -r .message
    """
    import time

    cutoff = parse_since(since, time.time()) if since is not None else None
    if source is not None:
        source = source.strip().lower()
        if source not in SOURCES:
            raise UsageError(f"--source must be stdout or stderr, not {source!r}")
    idle_timeout = _idle_timeout() if follow else None
    if exit_with_machine and (not follow or machine is None):
        raise UsageError("--exit-with-machine needs -f and a MACHINE")

    app_: AppContext = ctx.obj
    fleet_ref = resolve.fleet(app_, fleet)
    out = app_.output(json=json)
    keep = _filter(cutoff, source, out)

    from valyent_cli.cli.output import reader_may_leave

    with reader_may_leave():
        _print(app_, fleet_ref, machine, out, keep, json=json, follow=follow, no_prefix=no_prefix,
               idle_timeout=idle_timeout, exit_with=exit_with_machine)


def _print(app_: "AppContext", fleet_ref: str, machine: str | None, out: "Output", keep: "Keep | None", *, json: bool,
           follow: bool, no_prefix: bool, idle_timeout: float | None, exit_with: bool = False) -> None:
    """Find the machines, then print their history, follow them, or both."""
    from valyent_cli.cli.logmerge import MergedLogPrinter
    from valyent_cli.cli.output import LineWriter, LogFormatter

    writer = LineWriter()
    formatter = LogFormatter(color=out.color, prefix=machine is None and not no_prefix)
    run = MergedLogPrinter(app_.connect(), fleet_ref, writer, formatter, keep, json=json, note_color=out.err_color)

    if machine is not None:
        machine_id = str(resolve.machine(app_, fleet_ref, machine, id_only=True)["id"])
        if follow:
            run.follow([machine_id], idle_timeout, watch_fleet=False, exit_with=exit_with)
        else:
            run.history_one(machine_id)
        return

    machine_ids = [str(m["id"]) for m in app_.connect().machines.list(fleet_ref)]
    formatter.set_machines(machine_ids)
    if not follow:
        if not machine_ids:
            out.info(f"There are no machines in fleet {fleet_ref}.")
            return
        run.history_fleet(machine_ids)
        return
    seen = run.history_fleet(machine_ids) if machine_ids else {}
    if not machine_ids:
        out.info(f"There are no machines in fleet {fleet_ref} yet; waiting for some (Ctrl-C to stop).")
    run.follow(machine_ids, idle_timeout, watch_fleet=True, seen=seen)


def _filter(cutoff: float | None, source: str | None, out: "Output | None" = None) -> "Keep | None":
    """A predicate on (entry, its time), or None when every entry is kept (the fast path).

    With --source, a line that names no stream of its own is kept, with one note: a Ravel node writes every line
    with `source: "instance"` (runtime/logging/instance_logger.go), stdout and stderr merged."""
    if cutoff is None and source is None:
        return None
    if source is None:
        return lambda entry, ts: ts is None or ts >= cutoff  # type: ignore[operator]
    noted: list[bool] = []

    def by_source(entry: dict[str, Any], ts: float | None) -> bool:
        found = entry.get("source")
        if found not in SOURCES:
            if not noted and out is not None:
                noted.append(True)
                out.warn(f"--source {source}: these lines do not say which stream they came from "
                         f"(source: {str(found)[:40]!r}; a Ravel node merges stdout and stderr): printing them all")
        elif found != source:
            return False
        return cutoff is None or ts is None or ts >= cutoff

    return by_source
