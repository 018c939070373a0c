"""`valyent local`: the local sandbox, a Valyent-compatible API server on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

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
                      "podman or docker (env VALYENT_LOCAL_DRIVER).", show_default=False),
]
AllowRemoteOpt = Annotated[
    bool, typer.Option("--allow-remote", help="Allow a non-loopback --host (anyone with the token can run commands).")
]


def _err(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def serve(host: HostOpt = None, port: PortOpt = None, data_dir: DataDirOpt = None,
          allow_remote: AllowRemoteOpt = False, driver: DriverOpt = None) -> None:
    """Run the sandbox server in the foreground; Ctrl-C (or SIGTERM) stops it and its machines.

    Example: valyent local serve --port 9000 --data-dir ./sandbox --driver podman
    """
    from valyent_cli.local.paths import DEFAULT_HOST, DEFAULT_PORT, resolve_data_dir
    from valyent_cli.local.runner import ServeError, server_urls
    from valyent_cli.local.runner import serve as run_server

    host = host or DEFAULT_HOST
    port = port or DEFAULT_PORT
    data = resolve_data_dir(data_dir)
    _err(f"Sandbox API on {server_urls(host, port)['endpoint']} (data in {data}); Ctrl-C stops it.")
    try:
        run_server(host, port, data, allow_remote, driver)
    except ServeError as exc:
        _err(f"Error: {exc}")
        raise typer.Exit(2 if exc.usage else 1) from None


@app.command()
def start(host: HostOpt = None, port: PortOpt = None, data_dir: DataDirOpt = None,
          allow_remote: AllowRemoteOpt = False, driver: DriverOpt = None) -> None:
    """Start the sandbox in the background and make the `local` profile active.

    Machines are containers of their image with podman or docker when one is there (--driver auto), else local
    processes that run the machine's command but not its image (--driver process).

    Example: valyent local start --driver podman && valyent machines create --image nginx
    """
    from valyent_cli.local import daemon
    from valyent_cli.local.runner import ServeError

    try:
        info, started = daemon.start(data_dir, host, port, allow_remote, driver)
    except ServeError as exc:
        _err(f"Error: {exc}")
        raise typer.Exit(2 if exc.usage else 1) from None
    except daemon.DaemonError as exc:
        _err(f"Error: {exc}")
        raise typer.Exit(1) from None
    if started:
        _err(f"Started the local sandbox on {info['endpoint']} (pid {info['pid']}, data in {info['data_dir']}, "
             f"driver {info.get('driver', 'process')}).")
        if info.get("isolation") == "none":
            _err(f"Warning: machines run as plain processes, not isolated from each other or from this computer: "
                 f"{info.get('isolation_problem') or 'namespaces are unavailable'} (see the README, Sandbox isolation).")
    else:
        _err(f"The local sandbox is already running on {info['endpoint']} (pid {info['pid']}, "
             f"driver {info.get('driver', 'process')}).")
        if driver and info.get("driver") and info["driver"] != driver and driver != "auto":
            _err(f"It keeps its driver {info['driver']}: `valyent local stop` first to change it.")

    from valyent_cli import config

    previous = config.save_local_profile(
        endpoint=info["endpoint"],
        token=info["token"],
        initd_endpoint=info["initd_endpoint"],
        fleet="default",
        activate=True,
        namespace=info.get("namespace") or "default",
    )
    if previous and previous != "local":
        _err(f"Profile `local` is now active. Switch back with `valyent profiles use {previous}`.")
    else:
        _err("Profile `local` is now active (`valyent profiles list` shows the others).")
    _err("Try: valyent machines create --image nginx")


@app.command()
def stop(data_dir: DataDirOpt = None) -> None:
    """Stop the background sandbox and every machine it runs.

    Example: valyent local stop
    """
    from valyent_cli.local import daemon

    pid = daemon.stop(data_dir)
    if pid is None:
        _err("The local sandbox is not running.")
    else:
        _err(f"Stopped the local sandbox (pid {pid}) and its machines.")


@app.command()
def status(data_dir: DataDirOpt = None,
           as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON on stdout.")] = False) -> None:
    """Say whether the sandbox runs, where, and how many machines it holds.

    Example: valyent local status --json
    """
    from valyent_cli.local import daemon

    st = daemon.status(data_dir)
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
