"""`valyent local`: the local sandbox, a Valyent-compatible API server on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from valyent_cli.cli import complete

#: `local status`'s exit code when the sandbox is down (LSB's "program is not running", as `systemctl status`)
NOT_RUNNING = 3

app = typer.Typer(
    name="local",
    short_help="Run the local sandbox (an offline API).",
    help="Run the local sandbox: a Valyent-compatible API server on this machine.",
    no_args_is_help=True,
)

HostOpt = Annotated[
    Optional[str], typer.Option("--host", metavar="HOST", help="Address to listen on (default 127.0.0.1; loopback only unless --allow-remote).")
]
PortOpt = Annotated[Optional[int], typer.Option("--port", metavar="PORT", help="Port to listen on (default 8421).")]
DataDirOpt = Annotated[
    Optional[Path],
    typer.Option("--data-dir", metavar="DIR", help="Where the sandbox keeps its state and machines (env VALYENT_LOCAL_DIR).",
                 show_default=False),
]
DriverOpt = Annotated[
    Optional[str],
    typer.Option("--driver", metavar="DRIVER",
                 help="How machines run: auto (podman, else docker if its daemon answers, else process), process, "
                      "podman or docker (env VALYENT_LOCAL_DRIVER).", show_default=False,
                 autocompletion=complete.drivers),
]
AllowRemoteOpt = Annotated[
    bool, typer.Option("--allow-remote", help="Allow a non-loopback --host (anyone with the token can run commands).")
]


LogLinesOpt = Annotated[
    Optional[int],
    typer.Option("--log-max-lines", metavar="N", min=1, show_default=False,
                 help="Log lines kept per machine; the oldest go beyond it (default 1,000,000)."),
]
LogBytesOpt = Annotated[
    Optional[str],
    typer.Option("--log-max-bytes", metavar="SIZE", show_default=False,
                 help="Log text kept per machine, like 50M or 1G; the oldest lines go beyond it (default 100M)."),
]


def _say(message: str) -> None:
    from valyent_cli.cli.output import Output

    Output().note(message)


def _failed(exc: Exception, *, usage: bool = False) -> Exception:
    """A sandbox failure for the one error handler (cli/errors.py): exit 2 for bad usage, else 1."""
    from valyent_cli.cli.errors import CliError
    from valyent_cli.cli.exits import Exit

    return CliError(str(exc), Exit.USAGE if usage else Exit.ERROR)


def _local_profile() -> dict:
    from valyent_cli.local.autostart import local_profile

    return local_profile()


def _data_dir(flag: Path | None) -> Path | None:
    """Which sandbox a command means (shared with the auto-start in AppContext.connect())."""
    from valyent_cli.local.autostart import sandbox_data_dir

    return sandbox_data_dir(flag)


def _fleet_to_keep(info: dict) -> str:
    """The local profile's fleet when this sandbox has it (a restart keeps the user's choice), else `default`."""
    fleet = _local_profile().get("fleet")
    if not isinstance(fleet, str) or not fleet or fleet == "default":
        return "default"
    from valyent_cli.api import Client, ValyentError

    try:
        with Client(info["token"], endpoint=info["endpoint"], max_retries=0) as client:
            names = {str(f.get(k)) for f in client.fleets.list() for k in ("id", "name")}
    except ValyentError:
        return "default"
    if fleet in names:
        return fleet
    _say(f"Fleet `{fleet}` does not exist on this sandbox: profile `local` uses fleet `default` again.")
    return "default"


def _size(value: str) -> int:
    import re

    m = re.fullmatch(r"\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)\s*", value.lower())
    if not m or int(m.group(1)) <= 0:
        raise typer.BadParameter(f"{value!r} is not a size like 500000, 50M or 1G", param_hint="--log-max-bytes")
    return int(m.group(1)) * 1024 ** " kmg".index((m.group(2) or " ")[0] if m.group(2) != "b" else " ")


def _set_retention(lines: int | None, size: str | None) -> bool:
    """Pass the log retention to the server through its environment; True when one was given."""
    import os

    if size is not None:
        os.environ["VALYENT_LOCAL_LOG_MAX_BYTES"] = str(_size(size))
    if lines is not None:
        os.environ["VALYENT_LOCAL_LOG_MAX_LINES"] = str(lines)
    return lines is not None or size is not None


def _profile_name(info: dict) -> str:
    """`local`, unless profile `local` belongs to another sandbox that still runs: then this one gets a profile
    of its own, `local-PORT`, and the other keeps `local` (with its machines)."""
    from valyent_cli.local import daemon

    other = _local_profile().get("data_dir")
    if not isinstance(other, str) or not other:
        return "local"
    if Path(other).expanduser().resolve() == Path(info["data_dir"]).expanduser().resolve():
        return "local"
    if daemon.running_info(Path(other).expanduser()) is None:
        return "local"
    name = f"local-{info['port']}"
    _say(f"Warning: another sandbox still runs, from {other}: profile `local` stays with it, and this one is "
         f"profile `{name}` (back to the other: `valyent profiles use local`).")
    return name


def _driver_asked(flag: str | None) -> str:
    """The driver asked for (--driver, else VALYENT_LOCAL_DRIVER, else auto); a bad name is bad usage (exit 2)."""
    from valyent_cli.cli.errors import UsageError
    from valyent_cli.local.drivers import DriverError, requested

    try:
        return requested(flag)
    except DriverError as exc:
        raise UsageError(f"{'--driver' if flag else 'VALYENT_LOCAL_DRIVER'}: {exc}") from None


@app.command()
def serve(host: HostOpt = None, port: PortOpt = None, data_dir: DataDirOpt = None,
          allow_remote: AllowRemoteOpt = False, log_max_lines: LogLinesOpt = None,
          log_max_bytes: LogBytesOpt = None, driver: DriverOpt = None) -> None:
    """Run the sandbox server in the foreground; Ctrl-C (or SIGTERM) stops it and its machines.

    Example: valyent local serve --port 9000 --data-dir ./sandbox --driver podman
    """
    _driver_asked(driver)
    _set_retention(log_max_lines, log_max_bytes)
    from valyent_cli.local.paths import DEFAULT_HOST, DEFAULT_PORT, resolve_data_dir, token_path
    from valyent_cli.local.runner import ServeError, server_urls
    from valyent_cli.local.runner import serve as run_server

    host = host or DEFAULT_HOST
    port = port or DEFAULT_PORT
    data = resolve_data_dir(data_dir)
    urls = server_urls(host, port)
    _say(f"Sandbox API on {urls['endpoint']} (data in {data}); Ctrl-C stops it.")
    _say(f"Its token is in {token_path(data)}. Connect from another shell (a profile of its own):\n"
         f"  valyent profiles create sandbox --endpoint {urls['endpoint']} --initd-endpoint '{urls['initd_endpoint']}' "
         f"--token-stdin --use < {token_path(data)}")
    try:
        run_server(host, port, data, allow_remote, driver)
    except ServeError as exc:
        raise _failed(exc, usage=exc.usage) from None


@app.command()
def start(host: HostOpt = None, port: PortOpt = None, data_dir: DataDirOpt = None,
          allow_remote: AllowRemoteOpt = False, log_max_lines: LogLinesOpt = None,
          log_max_bytes: LogBytesOpt = None, driver: DriverOpt = None) -> None:
    """Start the sandbox in the background and make the `local` profile active.

    Machines are containers of their image with podman or docker when one is there (--driver auto), else local
    processes that run the machine's command but not its image (--driver process). Each machine's log is kept
    within --log-max-lines and --log-max-bytes (the oldest lines go first); the log of a destroyed machine is
    removed.

    Examples:

      valyent local start --driver podman && valyent machines create --image nginx

      valyent local start --log-max-lines 100000
    """
    wanted = _driver_asked(driver)
    retention = _set_retention(log_max_lines, log_max_bytes)
    from valyent_cli.local import daemon
    from valyent_cli.local.runner import ServeError

    try:
        info, started = daemon.start(_data_dir(data_dir), host, port, allow_remote, driver)
    except ServeError as exc:
        raise _failed(exc, usage=exc.usage) from None
    except daemon.DaemonError as exc:
        raise _failed(exc) from None
    if started:
        _say(f"Started the local sandbox on {info['endpoint']} (pid {info['pid']}, data in {info['data_dir']}, "
             f"driver {info.get('driver', 'process')}).")
        if info.get("isolation") == "none":
            _say(f"Warning: machines run as plain processes, not isolated from each other or from this computer: "
                 f"{info.get('isolation_problem') or 'namespaces are unavailable'} (see the README, Sandbox isolation).")
    else:
        _say(f"The local sandbox is already running on {info['endpoint']} (pid {info['pid']}, "
             f"driver {info.get('driver', 'process')}).")
        if wanted != "auto" and info.get("driver") and info["driver"] != wanted:
            asked = f"--driver {driver}" if driver else f"VALYENT_LOCAL_DRIVER={wanted}"
            _say(f"It keeps its driver {info['driver']} ({asked} is not applied): `valyent local stop` first to "
                 "change it.")
        if retention:
            _say("Its log retention is unchanged: `valyent local stop` first to start it with a new one.")

    from valyent_cli import config

    name = _profile_name(info)
    previous = config.save_local_profile(
        endpoint=info["endpoint"],
        token=info["token"],
        initd_endpoint=info["initd_endpoint"],
        fleet=_fleet_to_keep(info) if name == "local" else "default",
        activate=True,
        data_dir=str(info["data_dir"]),
        namespace=info.get("namespace") or "default",
        name=name,
    )
    if previous and previous != name:
        _say(f"Profile `{name}` is now active. Switch back with `valyent profiles use {previous}`.")
    else:
        _say(f"Profile `{name}` is now active (`valyent profiles list` shows the others).")
    from valyent_cli.local.hints import first_command

    _say(first_command(info.get("driver")))


@app.command()
def stop(data_dir: DataDirOpt = None) -> None:
    """Stop the background sandbox and every machine it runs (the one the active sandbox profile points at); with
    podman or docker, its containers are removed too (a machine's is made again at its next start).

    Example: valyent local stop
    """
    from valyent_cli.local import daemon

    pid = daemon.stop(_data_dir(data_dir))
    if pid is None:
        _say("The local sandbox is not running.")
    else:
        _say(f"Stopped the local sandbox (pid {pid}) and its machines.")


@app.command()
def status(data_dir: DataDirOpt = None,
           as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON on stdout.")] = False) -> int | None:
    """Say whether the sandbox runs, where, and how many machines it holds.

    Exits 0 when it runs and 3 when it does not (as `systemctl status`), its status printed either way: scripts can
    test it (`valyent local status >/dev/null || valyent local start`).

    Example: valyent local status --json
    """
    from valyent_cli.local import daemon

    st = daemon.status(_data_dir(data_dir))
    from valyent_cli.cli.output import Output

    out = Output(json=as_json)
    rows = [("Running", f"yes (pid {st['pid']})" if st["running"] else "no (start it with `valyent local start`)")]
    if st["running"]:
        rows += [("Endpoint", st["endpoint"]), ("Initd", st["initd_endpoint"]), ("Driver", st["driver"] or "process")]
    elif st["endpoint"]:
        rows.append(("Endpoint", f"{st['endpoint']} (last used)"))
    rows.append(("Data dir", st["data_dir"]))
    if st["machines"] is not None:
        rows.append(("Machines", f"{st['machines']} ({st['machines_running']} running)"))
    if st["running"] and st.get("isolation"):
        isolated = {"namespaces": "yes, a root of its own per machine",
                    "container": "yes, a container of its image per machine"}.get(st["isolation"])
        rows.append(("Isolated", isolated or f"no: {st.get('isolation_problem') or 'namespaces unavailable'}"))
    out.fields(st, rows)
    return None if st["running"] else NOT_RUNNING  # main() exits with a command's int (no error: a report)
