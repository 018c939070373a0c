"""The sandbox server of the tests (`Sandbox`) and its fixtures, registered by tests/conftest.py (pytest_plugins):
a real sandbox server on a free loopback port, and an environment to run the CLI against it.

- `sandbox` (session): one server for the whole run; its machines are left to it, and at the end the server is
  stopped with SIGTERM and the test fails if any machine process of its data dir is still alive.
- `fresh_sandbox` (function): a server of its own, with `kill9()` and `restart()` (same data dir and port).
- `engine_sandbox` (session, once per engine of support/engine.py's `engine`: podman, docker): one whose machines
  are containers of that engine; `engine_env` to run the CLI against it.
- `cli_env`: support.env.cli_environ for the session's sandbox and a private config dir; `api`: an httpx client of it.
- `fleet_env`: a fresh fleet on the session's sandbox; `one_machine`: a running machine in one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support.env import REPO, clean_environ, cli_environ, free_port

from valyent_cli.local.procs import find_machine_processes


class Sandbox:
    """A sandbox server in a subprocess, started as a user would: `valyent local serve`; ``env``: variables added to
    its environment (as `local start` passes its settings)."""

    def __init__(self, data_dir: Path, port: int | None = None, driver: str = "process", env: dict | None = None):
        self.data_dir = Path(data_dir)
        self.driver = driver
        self.env = dict(env or {})
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/v1"
        self.initd = self.base + "/initd/{machine_id}"
        self.proc: subprocess.Popen | None = None
        self.token: str | None = None

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=kw.pop("timeout", 30), **kw)

    def initd_client(self, machine_id: str, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.initd.format(machine_id=machine_id), headers=self.headers,
                            timeout=kw.pop("timeout", 30), **kw)

    def start(self, timeout: float = 20) -> "Sandbox":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir.parent / f"{self.data_dir.name}-server.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "valyent_cli", "local", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(self.data_dir), "--driver", self.driver],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env={**clean_environ(), **self.env}, cwd=str(REPO),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sandbox server exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"sandbox server did not answer within {timeout}s:\n{self.log_text()}")
        self.token = (self.data_dir / "token").read_text().strip()
        return self

    def log_text(self) -> str:
        try:
            return (self.data_dir.parent / f"{self.data_dir.name}-server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the sandbox server ignored SIGTERM for {timeout}s:\n{self.log_text()}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def restart(self) -> "Sandbox":
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        return self.start()

    def restart_pending(self, machine_id: str) -> bool:
        """Whether the server has a restart of the machine coming (its store's `resume` flag, which the supervisor
        sets in the same step as the exit event when it decides to restart, and clears when it decides not to, or
        when a stop cancels the pending restart). Read once the exit is seen: "it was not restarted" becomes a
        condition to check, not a pause to hope long enough."""
        import sqlite3

        db = sqlite3.connect(f"file:{self.data_dir / 'state.db'}?mode=ro", uri=True, timeout=10)
        try:
            row = db.execute("SELECT resume, state FROM machines WHERE id = ?", (machine_id,)).fetchone()
        finally:
            db.close()
        assert row is not None, f"no machine {machine_id} in {self.data_dir}"
        return bool(row[0]) or row[1] not in ("stopped", "destroyed")

    def machine_processes(self) -> list[tuple[int, str]]:
        return find_machine_processes(self.data_dir)

    def finish(self) -> None:
        """Stop the server; fail if any of its machine processes outlived it (and kill them)."""
        status = self.stop()
        deadline = time.monotonic() + 3
        left = self.machine_processes()
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = self.machine_processes()
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        assert not left, f"machine processes left after the server stopped: {left}"
        assert status in (0, None), f"sandbox server exit status {status}:\n{self.log_text()}"


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    sb = Sandbox(tmp_path_factory.mktemp("sandbox") / "data").start()
    try:
        yield sb
    finally:
        sb.finish()


@pytest.fixture()
def fresh_sandbox(tmp_path):
    sb = Sandbox(tmp_path / "data").start()
    try:
        yield sb
    finally:
        sb.finish()


def _container_sandbox(data_dir, engine):
    """A sandbox of ``engine``'s driver in ``data_dir``; afterwards, whatever containers of it a failed test left."""
    sb = Sandbox(data_dir, driver=engine.name).start()
    try:
        yield sb
    finally:
        try:
            sb.finish()
        finally:
            engine.remove_containers_of_sandbox(sb.data_dir)


@pytest.fixture(scope="session")
def engine_sandbox(tmp_path_factory, engine, engine_images):
    """A sandbox whose machines are containers of ``engine`` (skips, saying why, where the engine or busybox is
    missing; fails instead in CI)."""
    yield from _container_sandbox(tmp_path_factory.mktemp(f"{engine.name}-sandbox") / "data", engine)


@pytest.fixture(scope="session")
def podman_sandbox(tmp_path_factory, podman, podman_images):
    """A sandbox of the podman driver, for the tests that are about podman itself."""
    yield from _container_sandbox(tmp_path_factory.mktemp("podman-only-sandbox") / "data", podman)


@pytest.fixture()
def podman_env(tmp_path, podman_sandbox) -> dict:
    return cli_environ(tmp_path / "config", sandbox=podman_sandbox, fleet="default")


@pytest.fixture()
def api(sandbox):
    """An HTTP client of the session's sandbox API (/v1), with its token."""
    with sandbox.client() as client:
        yield client


@pytest.fixture()
def engine_env(tmp_path, engine_sandbox) -> dict:
    return cli_environ(tmp_path / "config", sandbox=engine_sandbox, fleet="default")


@pytest.fixture()
def cli_env(tmp_path, sandbox) -> dict:
    return cli_environ(tmp_path / "config", sandbox=sandbox)


@pytest.fixture()
def fleet_env(cli_env, sandbox):
    """A fresh fleet on the session's sandbox, selected through VALYENT_FLEET: (env, client, name); its machines
    are force-deleted and the fleet removed afterwards."""
    import secrets

    from valyent_cli.api import Client

    name = f"t-{secrets.token_hex(4)}"
    client = Client(sandbox.token, endpoint=sandbox.url, initd_endpoint=sandbox.initd)
    client.fleets.create(name)
    yield {**cli_env, "VALYENT_FLEET": name}, client, name
    for m in client.machines.list(name):
        client.machines.delete(name, m["id"], force=True)
    client.fleets.delete(name)
    client.close()


@pytest.fixture()
def one_machine(cli_env, sandbox):
    """A running machine (image nginx, its default command) in a fresh fleet of the session's sandbox, created through
    the CLI: (env with VALYENT_FLEET set, machine id, client); the fleet and its machines are removed afterwards."""
    import secrets

    from support.cli import run_cli

    from valyent_cli.api import Client

    name = f"m-{secrets.token_hex(4)}"
    client = Client(sandbox.token, endpoint=sandbox.url, initd_endpoint=sandbox.initd)
    client.fleets.create(name)
    env = {**cli_env, "VALYENT_FLEET": name}
    made = run_cli("machines", "create", "-q", "--image", "nginx", env=env)
    assert made.returncode == 0, made.stderr
    yield env, made.stdout.strip(), client
    for m in client.machines.list(name):
        client.machines.delete(name, m["id"], force=True)
    client.fleets.delete(name)
    client.close()
