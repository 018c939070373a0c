"""Run the sandbox server in the foreground under uvicorn (`valyent local serve`)."""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import sys
import time
from pathlib import Path

from valyent_cli.local.errors import ServeError
from valyent_cli.local.paths import ensure_data_dir, load_or_create_token


#: server.log is rotated (to server.log.1, replacing the one before) once it is larger than this
SERVER_LOG_MAX = 10 * 1024 * 1024
SERVER_LOG_CHECK = 60.0  # seconds between two checks while the server runs


def rotate_server_log(data_dir: Path, limit: int = SERVER_LOG_MAX) -> bool:
    """Move server.log to server.log.1 when it is over `limit`. When this process writes to it (the server
    started by `local start`), its stdout and stderr go on in a new server.log. True when it rotated."""
    path = Path(data_dir) / "server.log"
    try:
        if path.stat().st_size <= limit:
            return False
        mine = os.fstat(2)
        ours = (mine.st_dev, mine.st_ino) == (path.stat().st_dev, path.stat().st_ino)
        os.replace(path, path.with_name("server.log.1"))
    except OSError:
        return False
    if ours:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError:
            return True
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    return True


def _watch_server_log(data_dir: Path) -> None:
    import threading

    def loop() -> None:
        while True:
            time.sleep(SERVER_LOG_CHECK)
            rotate_server_log(data_dir)

    threading.Thread(target=loop, name="server-log-rotation", daemon=True).start()


#: the least free space a start needs (its database writes); below it a start stops with a message
MIN_FREE_TO_START = 1024 * 1024


def _check_space(data_dir: Path) -> None:
    """Refuse to start on a full disk with a message, not a traceback from the first write that fails. The space
    kept in <data>/reserve (for stopping machines on a full disk) is given back first."""
    def free() -> int:
        st = os.statvfs(data_dir)
        return st.f_bavail * st.f_frsize

    try:
        if free() >= MIN_FREE_TO_START:
            return
        (data_dir / "reserve").unlink(missing_ok=True)
        left = free()
    except OSError:
        return
    if left < MIN_FREE_TO_START:
        from valyent_cli.local.preflight import no_space

        raise ServeError(f"{no_space(data_dir)} ({left // 1024} KiB free; machine logs and files are the usual cause)")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def endpoint_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host in ("::",):
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def server_urls(host: str, port: int) -> dict:
    base = f"http://{endpoint_host(host)}:{port}"
    return {"base": base, "endpoint": base + "/v1", "initd_endpoint": base + "/initd/{machine_id}"}


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only when it sees that proto; without it
    # every keep-alive response waits ~40 ms for a delayed ACK (headers and body are two writes)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(f"port {port} on {host} is already in use (another sandbox? try --port)") from None
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _lock(data_dir: Path):
    """One server per data dir: a second one would take the first one's machines for leftovers and kill them."""
    import fcntl

    fh = open(data_dir / "server.lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise ServeError(f"another sandbox server is already running with the data dir {data_dir}") from None
    return fh


def serve(host: str, port: int, data_dir: Path, allow_remote: bool = False, driver: str | None = None) -> None:
    """Run until SIGINT/SIGTERM; every machine is stopped before this returns. `driver`: auto (default, or
    VALYENT_LOCAL_DRIVER), process, podman or docker."""
    if not is_loopback(host) and not allow_remote:
        raise ServeError(
            f"refusing to listen on {host}, which is not a loopback address: the sandbox runs commands for whoever "
            "holds its token. Pass --allow-remote if you mean it.",
            usage=True,
        )
    if not 0 < port < 65536:
        raise ServeError(f"invalid port {port}", usage=True)
    from valyent_cli.local import drivers

    try:
        kind, engine = drivers.choose(driver)
    except drivers.DriverError as exc:
        raise ServeError(str(exc), usage=drivers.requested_is_bad(driver)) from None
    data_dir = ensure_data_dir(Path(data_dir))
    lock = _lock(data_dir)
    from valyent_cli.local import preflight

    _check_space(data_dir)  # first: on a full disk, opening state.db fails as "disk I/O error"
    preflight.check_state(data_dir)
    preflight.remove_stale_uploads(data_dir)
    rotate_server_log(data_dir)
    _watch_server_log(data_dir)
    _raise_fd_limit()
    sock = _bind(host, port)
    token = load_or_create_token(data_dir)

    import asyncio

    import uvicorn

    from valyent_cli.local.server import create_app

    from valyent_cli.local import isolation
    from valyent_cli.local.server import OWN_NAMESPACE

    # the process driver isolates machines with namespaces where it can; a container engine isolates its own
    isolation_problem = isolation.probe(data_dir / "machines") if kind == "process" else None
    app = create_app(data_dir, token, isolation_problem, driver=kind, engine=engine)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            super().handle_exit(sig, frame)
            # uvicorn re-raises the signal once it has stopped; we stop cleanly instead and exit 0
            self._captured_signals.clear()
            supervisor = getattr(app.state, "supervisor", None)
            loop = getattr(app.state, "loop", None)
            if supervisor is not None and loop is not None:
                loop.call_soon_threadsafe(supervisor.begin_shutdown)

    from valyent_cli.local import listeners

    config = uvicorn.Config(  # a head timeout and a connection cap: local/listeners.py
        app, log_level="warning", access_log=False, lifespan="on", loop="asyncio", http=listeners.h11_protocol(),
        timeout_graceful_shutdown=5, server_header=False,
    )
    server = Server(config)
    info = {"host": host, "port": sock.getsockname()[1], "pid": os.getpid(), **server_urls(host, port),
            "driver": kind, "namespace": OWN_NAMESPACE,
            "isolation": "container" if kind != "process" else ("none" if isolation_problem else "namespaces")}
    if isolation_problem:
        info["isolation_problem"] = isolation_problem
    info.pop("base")
    _write_json(data_dir / "server.json", info)
    (data_dir / "server.pid").write_text(f"{os.getpid()}\n")

    async def main():
        app.state.loop = asyncio.get_running_loop()
        listeners.log_accept_errors(app.state.loop)  # EMFILE: one line, not a traceback per accept
        await server.serve(sockets=[sock])

    try:
        asyncio.run(main())
    finally:
        try:
            if (data_dir / "server.pid").read_text().strip() == str(os.getpid()):
                (data_dir / "server.pid").unlink()
        except OSError:
            pass
        lock.close()


def _raise_fd_limit() -> None:
    """Each machine holds up to three descriptors (two pipes, a pidfd): 1024 would cap a sandbox at ~300."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else 65536
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, 65536), hard))
    except (ImportError, ValueError, OSError):
        pass


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    """`python -m valyent_cli.local serve ...`: the server alone, without loading the CLI's command groups."""
    import argparse

    from valyent_cli.local.paths import DEFAULT_HOST, DEFAULT_PORT, resolve_data_dir

    parser = argparse.ArgumentParser(prog="python -m valyent_cli.local")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="run the sandbox server in the foreground")
    p.add_argument("--host", default=DEFAULT_HOST)
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--allow-remote", action="store_true")
    p.add_argument("--driver", default=None)
    args = parser.parse_args(argv)
    try:
        serve(args.host, args.port, resolve_data_dir(args.data_dir), args.allow_remote, args.driver)
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2 if exc.usage else 1)
    except OSError as exc:  # a full disk or an unwritable data dir while starting: one line, no traceback
        from valyent_cli.local.preflight import describe_os_error

        print(f"error: {describe_os_error(exc, exc.filename or args.data_dir or 'the data dir')}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
