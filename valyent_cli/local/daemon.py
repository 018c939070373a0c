"""The sandbox in the background: `valyent local start/stop/status`, and `ensure_running()` for the CLI.

`start` spawns `python -m valyent_cli.local serve` in its own session (the server alone: it does not need the
CLI's other command groups), its output going to `server.log`, and returns once `/healthz` answers. The server
writes `server.json` ({host, port, pid, endpoint, initd_endpoint}) and `server.pid` into the data dir itself.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from valyent_cli.local.preflight import describe_os_error
from valyent_cli.local.paths import DEFAULT_HOST, DEFAULT_PORT, ensure_data_dir, read_token, resolve_data_dir
from valyent_cli.local.runner import ServeError, endpoint_host, is_loopback, server_urls

START_TIMEOUT = 10.0


class DaemonError(Exception):
    pass


def read_info(data_dir: Path) -> dict | None:
    try:
        return json.loads((data_dir / "server.json").read_text())
    except (OSError, ValueError):
        return None


def _pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "server.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _is_our_server(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
        return b"valyent" in cmdline and b"serve" in cmdline  # not a reused pid
    except OSError:
        return True  # no /proc (macOS): trust the pid file


def healthy(host: str, port: int, timeout: float = 1.0) -> bool:
    conn = http.client.HTTPConnection(endpoint_host(host).strip("[]"), port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        return resp.status == 200 and json.loads(resp.read() or b"{}").get("ok") is True
    except (OSError, ValueError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def running_info(data_dir: Path) -> dict | None:
    """server.json of a live server of this data dir, else None."""
    info = read_info(data_dir)
    pid = _pid(data_dir)
    if not info or not pid or info.get("pid") != pid or not _is_our_server(pid):
        return None
    return info if healthy(info["host"], info["port"]) else None


def log_tail(data_dir: Path, lines: int = 20, since: int = 0) -> str:
    """The last lines of `server.log`, from offset ``since`` on (a start shows only what it wrote)."""
    try:
        with open(data_dir / "server.log", "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(since, fh.tell() - 8192))
            return b"\n".join(fh.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return ""


def start(data_dir: Path | str | None = None, host: str | None = None, port: int | None = None,
          allow_remote: bool = False, driver: str | None = None) -> tuple[dict, bool]:
    """Start the server in the background unless it runs. Returns (info, started_now); info has the token.

    Starters of one data dir take turns under a lock (`start.lock`): when several commands find the sandbox down
    at once, one starts it and the others wait for it, then use it.
    """
    data_dir = ensure_data_dir(resolve_data_dir(data_dir))
    read_token(data_dir)  # a token file that must not be used is refused before anything starts
    info = running_info(data_dir)
    if info:
        return {**info, "data_dir": str(data_dir), "token": read_token(data_dir)}, False
    with _start_lock(data_dir):
        info = running_info(data_dir)
        if info:  # another starter got there first
            return {**info, "data_dir": str(data_dir), "token": read_token(data_dir)}, False
        return _spawn(data_dir, host, port, allow_remote, driver)


@contextlib.contextmanager
def _start_lock(data_dir: Path) -> Iterator[None]:
    import fcntl

    path = data_dir / "start.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise DaemonError(describe_os_error(exc, path)) from None
    try:
        deadline = time.monotonic() + START_TIMEOUT + 10
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DaemonError(f"another `valyent local start` has held {path} for over "
                                      f"{START_TIMEOUT + 10:.0f} s; is it stuck?") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _spawn(data_dir: Path, host: str | None, port: int | None, allow_remote: bool,
           driver: str | None = None) -> tuple[dict, bool]:
    last = read_info(data_dir) or {}
    host = host or last.get("host") or DEFAULT_HOST
    port = port or last.get("port") or DEFAULT_PORT
    if not is_loopback(host) and not allow_remote:
        raise ServeError(f"refusing to listen on {host}, which is not a loopback address (use --allow-remote)",
                         usage=True)
    cmd = [sys.executable, "-m", "valyent_cli.local", "serve", "--host", host, "--port", str(port),
           "--data-dir", str(data_dir)]
    if allow_remote:
        cmd.append("--allow-remote")
    if driver:
        cmd += ["--driver", driver]
    from valyent_cli.local.runner import rotate_server_log

    rotate_server_log(data_dir)  # before this start's lines, which its error message shows
    log_path = data_dir / "server.log"
    # Ctrl-C, SIGTERM or SIGHUP between the spawn and the `try` below would leave a server nobody stops: they
    # are held back until `proc` exists (the child unblocks them before it runs), then delivered inside the try.
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        with open(log_path, "ab") as log:
            since = log.tell()  # what this start writes: earlier runs' lines are not this start's error
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
            log.flush()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                    close_fds=True, cwd=str(data_dir),
                                    preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, held))
    except BaseException as exc:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        if isinstance(exc, OSError):
            raise DaemonError(describe_os_error(exc, log_path)) from None
        raise
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)  # a signal that came meanwhile is raised here
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DaemonError(_failure(proc.returncode, data_dir, since))
            if healthy(host, port, timeout=0.5):
                info = read_info(data_dir) or {}
                if info.get("pid") == proc.pid:
                    return {**info, "data_dir": str(data_dir), "token": read_token(data_dir)}, True
            time.sleep(0.05)
        raise DaemonError(f"the sandbox server did not answer within {START_TIMEOUT:.0f} s:\n"
                          + log_tail(data_dir, since=since))
    except BaseException:
        # Failed, timed out, or interrupted (Ctrl-C, SIGTERM): leave no server behind, half-started or not.
        _end(proc)
        raise


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _failure(code: int, data_dir: Path, since: int) -> str:
    """Why the server this start spawned exited: its own one-line error when it gave one, else its log."""
    tail = log_tail(data_dir, since=since)
    errors = [line[len("error: "):] for line in tail.splitlines() if line.startswith("error: ")]
    if errors:
        return errors[-1]
    return f"the sandbox server exited (code {code}) while starting:\n{tail}"


def stop(data_dir: Path | str | None = None, timeout: float = 20.0) -> int | None:
    """SIGTERM the server (which stops its machines) and wait for it. Returns its pid, None if not running."""
    from valyent_cli.local import procs

    data_dir = resolve_data_dir(data_dir)
    pid = _pid(data_dir)
    if not pid or not _is_our_server(pid):
        procs.kill_machine_processes(data_dir)
        _kill_containers(data_dir)
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
    procs.kill_machine_processes(data_dir)  # the server does this itself; this covers a SIGKILL
    _kill_containers(data_dir, remove=True)
    try:
        (data_dir / "server.pid").unlink()
    except OSError:
        pass
    return pid


def _kill_containers(data_dir: Path, remove: bool = False) -> None:
    """Containers of a server that died without stopping them (the server stops its own); ``remove``: after a
    stop, the stopped containers go too (a machine's container is made again at its next start)."""
    info = read_info(data_dir) or {}
    if info.get("driver") in ("podman", "docker"):
        from valyent_cli.local.drivers import kill_leftover_containers

        kill_leftover_containers(data_dir, remove=remove)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True


def status(data_dir: Path | str | None = None) -> dict:
    data_dir = resolve_data_dir(data_dir)
    info = running_info(data_dir)
    last = info or read_info(data_dir) or {}
    out = {
        "running": info is not None,
        "endpoint": last.get("endpoint"),
        "initd_endpoint": last.get("initd_endpoint"),
        "host": last.get("host"),
        "port": last.get("port"),
        "pid": info.get("pid") if info else None,
        "driver": info.get("driver") if info else None,
        "data_dir": str(data_dir),
        "machines": None,
        "machines_running": None,
        "isolation": last.get("isolation") if info else None,  # namespaces, or none (then why)
    }
    if info and last.get("isolation_problem"):
        out["isolation_problem"] = last["isolation_problem"]
    db = data_dir / "state.db"
    if db.exists():
        import sqlite3

        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
            try:
                out["machines"] = conn.execute("SELECT COUNT(*) FROM machines WHERE state != 'destroyed'").fetchone()[0]
                out["machines_running"] = conn.execute(
                    "SELECT COUNT(*) FROM machines WHERE state IN ('starting', 'running', 'stopping')"
                ).fetchone()[0]
            finally:
                conn.close()
        except sqlite3.Error:
            pass
    return out


def ensure_running(data_dir: Path | str | None = None, host: str | None = None, port: int | None = None) -> dict:
    """The server's info (server.json plus data_dir and token), starting it in the background if it does not
    answer: on host and port when given, else where it last ran, else 127.0.0.1:8421. A server that already
    runs for this data dir is returned as it is, wherever it listens. Raises DaemonError or ServeError (a
    non-loopback host) when it cannot start."""
    info, _ = start(data_dir, host, port)
    return info


__all__ = ["DaemonError", "ServeError", "ensure_running", "start", "stop", "status", "server_urls"]
