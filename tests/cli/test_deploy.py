"""`valyent deploy`, `releases`, `rollback`, `status` end to end on the sandbox's process driver: real machines
behind a real gateway, a steady stream of requests through the gateway URL while the release changes.

The process driver runs a machine's command on the host's network, so the three machines of a release share the
gateway's target port: the app below binds it with SO_REUSEPORT (the kernel spreads connections over the
listeners) and, on its stop signal, finishes what it serves before it exits.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
import tomli_w
from support.cli import Proc, run_cli
from support.env import free_port

APP = r"""
import http.server, os, signal, socket, sys, threading
if os.environ.get("CRASH"):
    print("boom: the app cannot start", flush=True)
    sys.exit(3)
if os.environ.get("ONLY_ONE"):  # the first machine of the release holds this port; the next ones cannot start
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", int(os.environ["ONLY_ONE"])))
    except OSError:
        print("boom: another machine of this release runs", flush=True)
        sys.exit(3)
V, P = os.environ["VERSION"], int(os.environ["PORT"])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = V.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    daemon_threads = False
    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()
srv = S(("127.0.0.1", P), H)
def stop():
    # The kernel resets the connections still queued on a SO_REUSEPORT listener when it closes: accept every
    # queued one first, then close at once (the window left is a few microseconds).
    srv.shutdown()
    srv.socket.setblocking(False)
    while True:
        try:
            conn, addr = srv.socket.accept()
        except BlockingIOError:
            break
        conn.setblocking(True)
        srv.process_request(conn, addr)
    srv.server_close()
signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=stop).start())
print("serving", V, flush=True)
srv.serve_forever(poll_interval=0.05)
"""


def write_project(path, fleet: str, port: int, version: str, *, crash: bool = False, count: int = 3,
                  strategy: str = "rolling", extra_deploy: dict | None = None, only_one: int | None = None) -> None:
    env = {"VERSION": version, "PORT": str(port)}
    if crash:
        env["CRASH"] = "1"
    if only_one:
        env["ONLY_ONE"] = str(only_one)
    doc = {
        "fleet": fleet,
        "machine": {"image": f"local/app:{version}", "cmd": ["/usr/bin/python3", "-c", APP], "env": env,
                    "enable_gateway": True, "stop_timeout": 5},
        "deploy": {"count": count, "strategy": strategy, "wait_timeout": "90s", **(extra_deploy or {})},
    }
    (path / "valyent.toml").write_text(tomli_w.dumps(doc))


class Traffic:
    """A steady stream of GETs through the gateway URL, from a thread; every answer or error kept."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[tuple[int, str]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    r = client.get(self.url)
                    self.answers.append((r.status_code, r.text))
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                self._stop.wait(0.01)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(15)

    def failures(self) -> list:
        return self.errors + [a for a in self.answers if a[0] != 200]


def app_machines(client, fleet: str) -> list[dict]:
    return [m for m in client.machines.list(fleet, labels={"valyent.app": fleet})
            if m.get("state") not in ("destroyed", "destroying")]


def releases_of(machines: list[dict]) -> list[str]:
    return sorted(m["metadata"]["labels"]["valyent.release"] for m in machines)


@pytest.fixture()
def app_env(fleet_env, tmp_path):
    env, client, fleet = fleet_env
    port = free_port()
    made = run_cli("gateways", "create", "--name", "web", "--port", str(port), "--json", env=env)
    assert made.returncode == 0, made.stderr
    gw = json.loads(made.stdout)
    return env, client, fleet, port, gw["url"], tmp_path


def deploy(env, cwd, *args, timeout: float = 400):
    return run_cli("deploy", *args, env=env, cwd=str(cwd), timeout=timeout)


@pytest.mark.timeout(900)  # a dozen releases of real machines: minutes on a loaded machine
def test_deploy_rolls_out_with_no_request_lost_fails_safely_and_rolls_back(app_env):
    env, client, fleet, port, url, project = app_env
    write_project(project, fleet, port, "v1")
    first = deploy(env, project, "--json")
    assert first.returncode == 0, first.stderr
    record = json.loads(first.stdout)
    assert record["release"] == 1 and record["status"] == "succeeded" and len(record["machines"]) == 3
    assert releases_of(app_machines(client, fleet)) == ["1", "1", "1"]
    assert httpx.get(url).text == "v1"
    assert "Traceback" not in first.stderr

    # v2 under a steady stream of requests: none fails, the last answers are v2
    write_project(project, fleet, port, "v2")
    with Traffic(url) as traffic:
        second = deploy(env, project)
        time.sleep(0)  # the stream keeps going until the block ends
        deadline = len(traffic.answers) + 20
        while len(traffic.answers) < deadline and not traffic.errors:
            traffic._stop.wait(0.01)
    assert second.returncode == 0, second.stderr
    assert traffic.failures() == [], traffic.failures()[:5]
    assert len(traffic.answers) > 20
    assert {body for _, body in traffic.answers[-10:]} == {"v2"}
    assert releases_of(app_machines(client, fleet)) == ["2", "2", "2"]
    # off a terminal: one timestamped line per step
    assert any(line[:2].isdigit() and line[2] == ":" and "create" in line for line in second.stderr.splitlines())

    # a release whose machines crash: exit 1, no request lost, v2 keeps serving, nothing of release 3 remains
    write_project(project, fleet, port, "v3", crash=True)
    with Traffic(url) as traffic:
        third = deploy(env, project)
        deadline = len(traffic.answers) + 20
        while len(traffic.answers) < deadline and not traffic.errors:
            traffic._stop.wait(0.01)
    assert third.returncode == 1, third.stderr
    assert "boom: the app cannot start" in third.stderr  # the failing machine's last log lines
    assert "release 3" in third.stderr and "Traceback" not in third.stderr
    assert traffic.failures() == [], traffic.failures()[:5]
    assert {body for _, body in traffic.answers[-10:]} == {"v2"}
    assert releases_of(app_machines(client, fleet)) == ["2", "2", "2"]

    listed = run_cli("releases", "--json", env=env, cwd=str(project))
    assert listed.returncode == 0, listed.stderr
    assert [(r["release"], r["status"]) for r in json.loads(listed.stdout)] == [
        (3, "failed"), (2, "succeeded"), (1, "succeeded")]
    table = run_cli("releases", env=env, cwd=str(project))
    assert "failed" in table.stdout and "local/app:v2" in table.stdout

    # --dry-run of a rollback: the plan, and nothing changes
    before = sorted(m["id"] for m in app_machines(client, fleet))
    dry = run_cli("rollback", "--dry-run", env=env, cwd=str(project))
    assert dry.returncode == 0, dry.stderr
    assert "release 2 -> release 4" in dry.stdout and 'config.image: "local/app:v2" -> "local/app:v1"' in dry.stdout
    assert sorted(m["id"] for m in app_machines(client, fleet)) == before
    assert len(json.loads(run_cli("releases", "--json", env=env, cwd=str(project)).stdout)) == 3

    # rollback: back to v1's payload, as release 4; release 2 is rolled back
    back = run_cli("rollback", env=env, cwd=str(project), timeout=400)
    assert back.returncode == 0, back.stderr
    assert httpx.get(url).text == "v1"
    assert releases_of(app_machines(client, fleet)) == ["4", "4", "4"]
    records = {r["release"]: r for r in json.loads(run_cli("releases", "--json", env=env, cwd=str(project)).stdout)}
    assert records[4]["rollback_of"] == 1 and records[4]["status"] == "succeeded"
    assert records[2]["status"] == "rolled-back"

    status = run_cli("status", "--json", env=env, cwd=str(project))
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["release"]["release"] == 4 and len(shown["machines"]) == 3
    assert shown["gateways"][0]["url"] == url
    text = run_cli("status", env=env, cwd=str(project)).stdout
    assert "Release:" in text and url in text


def test_dry_run_changes_nothing_and_prints_the_plan(app_env):
    env, client, fleet, port, _url, project = app_env
    write_project(project, fleet, port, "v1", count=2)
    dry = deploy(env, project, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "nothing deployed -> release 1" in dry.stdout and "create new-1, new-2" in dry.stdout
    assert app_machines(client, fleet) == []
    assert (client.fleets.get(fleet).get("metadata") or {}).get("annotations") in (None, {})
    plan = json.loads(deploy(env, project, "--dry-run", "--json").stdout)
    assert plan["to_release"] == 1 and plan["payload"]["config"]["image"] == "local/app:v1"
    # the payload is the one `machines create` builds from the same valyent.toml
    created = json.loads(run_cli("machines", "create", "--dry-run", env=env, cwd=str(project)).stdout)
    assert plan["payload"] == created


def test_bad_deploy_settings_exit_2_before_any_request(app_env):
    env, client, fleet, port, _url, project = app_env
    write_project(project, fleet, port, "v1", extra_deploy={"strategy": "sideways"})
    bad = deploy(env, project)
    assert bad.returncode == 2 and "[deploy] strategy" in bad.stderr and "sideways" in bad.stderr
    for table, key, value, words in (("deploy", "stratgy", "rolling", ["unknown key 'stratgy' in [deploy]"]),
                                     ("deploy", "count", "three", ["[deploy] count must be", "valyent.toml"]),
                                     ("deploy", "max_unavailable", "lots", ["[deploy] max_unavailable"]),
                                     ("build", "contxt", ".", ["unknown key 'contxt' in [build]"])):
        write_project(project, fleet, port, "v1", extra_deploy={key: value} if table == "deploy" else None)
        if table == "build":
            with open(project / "valyent.toml", "a") as f:
                f.write(f'\n[build]\n{key} = "{value}"\n')
        result = deploy(env, project)
        assert result.returncode == 2 and all(w in result.stderr for w in words), (key, result.stderr)
    write_project(project, fleet, port, "v1")
    for args, word in ((["--strategy", "x"], "--strategy"), (["--max-unavailable", "0"], "--max-unavailable"),
                       (["--count", "0"], "--count"), (["--wait-timeout", "soon"], "--wait-timeout")):
        result = deploy(env, project, *args)
        assert result.returncode == 2 and word in result.stderr, (args, result.stderr)
    assert app_machines(client, fleet) == []


def test_release_command_runs_first_and_a_failing_one_aborts(app_env):
    env, client, fleet, port, url, project = app_env
    write_project(project, fleet, port, "v1", count=1,
                  extra_deploy={"release_command": "/bin/sh -c 'echo migrating; exit 4'"})
    failed = deploy(env, project)
    assert failed.returncode == 1, failed.stderr
    assert "release command exited with code 4" in failed.stderr and "migrating" in failed.stderr
    assert app_machines(client, fleet) == []
    assert [m for m in client.machines.list(fleet) if m.get("state") != "destroyed"] == []
    write_project(project, fleet, port, "v1", count=1, extra_deploy={"release_command": "/bin/true"})
    good = deploy(env, project)
    assert good.returncode == 0, good.stderr
    assert "release command succeeded" in good.stderr
    assert httpx.get(url).text == "v1"


@pytest.mark.parametrize("signum,code,why", [(2, 130, "interrupted"), (15, 143, "Terminated")],
                         ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_undoes_the_release(app_env, signum, code, why):
    env, client, fleet, port, url, project = app_env
    write_project(project, fleet, port, "v1", count=1)
    assert deploy(env, project).returncode == 0
    # v2 never gets healthy: the deploy waits on it until Ctrl-C
    write_project(project, fleet, port, "v2", count=1)
    import tomllib

    data = tomllib.loads((project / "valyent.toml").read_text())
    data["machine"]["health_cmd"] = "/bin/false"
    data["machine"]["health_interval"] = 1
    (project / "valyent.toml").write_text(tomli_w.dumps(data))
    proc = Proc(["deploy"], env={**env}, cwd=str(project))
    proc.wait_for(lambda: any("wait until they count" in line for line in proc.err), 60, "the wait step")
    proc.proc.send_signal(signum)
    assert proc.finish(60) == code, proc.stderr
    assert releases_of(app_machines(client, fleet)) == ["1"]
    assert httpx.get(url).text == "v1"
    records = json.loads(run_cli("releases", "--json", env=env, cwd=str(project)).stdout)
    assert records[0]["status"] == "failed" and why in records[0]["error"]


# -- the podman driver: two images built offline (tests/support/engine.py) -----------------------------------------
def podman_project(path, fleet: str, image: str) -> None:
    doc = {"fleet": fleet,
           "machine": {"image": image, "enable_gateway": True, "stop_timeout": 2,
                       "health_cmd": "wget -q -O /dev/null http://127.0.0.1:8080/", "health_interval": 1},
           "deploy": {"count": 3, "strategy": "rolling", "wait_timeout": "60s"}}
    (path / "valyent.toml").write_text(tomli_w.dumps(doc))


@pytest.fixture()
def podman_app(engine_env, engine_sandbox, tmp_path):
    import secrets

    from valyent_cli.api import Client

    fleet = f"d-{secrets.token_hex(4)}"
    client = Client(engine_sandbox.token, endpoint=engine_sandbox.url, initd_endpoint=engine_sandbox.initd)
    client.fleets.create(fleet)
    env = {**engine_env, "VALYENT_FLEET": fleet}
    made = run_cli("gateways", "create", "--name", "web", "--port", "8080", "--json", env=env)
    assert made.returncode == 0, made.stderr
    yield env, client, fleet, json.loads(made.stdout)["url"], tmp_path
    for m in client.machines.list(fleet):
        client.machines.delete(fleet, m["id"], force=True)
    client.fleets.delete(fleet)
    client.close()


@pytest.mark.timeout(900)  # a dozen releases of real machines: minutes on a loaded machine
def test_podman_deploy_v2_loses_no_request_a_crash_is_undone_and_rollback_returns_to_v1(podman_app, engine_images):
    env, client, fleet, url, project = podman_app
    podman_project(project, fleet, engine_images["v1"])
    first = deploy(env, project)
    assert first.returncode == 0, first.stderr
    assert httpx.get(url).text == "v1"

    with Traffic(url) as traffic:
        second = deploy(env, project, "--image", engine_images["v2"])
        deadline = len(traffic.answers) + 20
        while len(traffic.answers) < deadline and not traffic.errors:
            traffic._stop.wait(0.01)
    assert second.returncode == 0, second.stderr
    assert traffic.failures() == [], traffic.failures()[:5]
    assert {body for _, body in traffic.answers[-10:]} == {"v2"}
    assert releases_of(app_machines(client, fleet)) == ["2", "2", "2"]

    # the base image's CMD (a shell without input) exits at once: the release fails, v2 keeps serving
    with Traffic(url) as traffic:
        third = deploy(env, project, "--image", engine_images["base"])
        deadline = len(traffic.answers) + 20
        while len(traffic.answers) < deadline and not traffic.errors:
            traffic._stop.wait(0.01)
    assert third.returncode == 1, third.stderr
    assert traffic.failures() == [], traffic.failures()[:5]
    assert {body for _, body in traffic.answers[-10:]} == {"v2"}
    assert releases_of(app_machines(client, fleet)) == ["2", "2", "2"]

    before = sorted(m["id"] for m in app_machines(client, fleet))
    assert run_cli("rollback", "--dry-run", env=env, cwd=str(project)).returncode == 0
    assert sorted(m["id"] for m in app_machines(client, fleet)) == before
    with Traffic(url) as traffic:
        back = run_cli("rollback", env=env, cwd=str(project), timeout=400)
    assert back.returncode == 0, back.stderr
    assert traffic.failures() == [], traffic.failures()[:5]
    assert httpx.get(url).text == "v1"
    assert releases_of(app_machines(client, fleet)) == ["4", "4", "4"]


def test_detach_returns_with_the_release_number_and_the_rollout_goes_on(app_env):
    from support.util import wait_until

    env, client, fleet, port, url, project = app_env
    write_project(project, fleet, port, "v1", count=2)
    env = {**env, "XDG_STATE_HOME": str(project / "state"), "HOME": str(project / "home")}
    started = deploy(env, project, "--detach")
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "1"
    assert "in the background" in started.stderr and "deploy-" in started.stderr

    def done():
        records = json.loads(run_cli("releases", "--json", env=env, cwd=str(project)).stdout)
        return records and records[0]["status"] != "running" and records[0]

    record = wait_until(done, 90, interval=0.5, message="the detached release to end")
    assert record["status"] == "succeeded", record
    assert releases_of(app_machines(client, fleet)) == ["1", "1"]
    assert httpx.get(url).text == "v1"


@pytest.mark.timeout(900)  # a dozen releases of real machines: minutes on a loaded machine
def test_a_failure_in_a_later_batch_recreates_the_old_machines_removed_before(app_env):
    env, client, fleet, port, url, project = app_env
    write_project(project, fleet, port, "v1")
    assert deploy(env, project).returncode == 0
    # release 2: its first machine runs (batch 1 replaces an old one), its second cannot start (batch 2 fails)
    write_project(project, fleet, port, "v2", only_one=free_port())
    with Traffic(url) as traffic:
        failed = deploy(env, project)
        deadline = len(traffic.answers) + 20
        while len(traffic.answers) < deadline and not traffic.errors:
            traffic._stop.wait(0.01)
    assert failed.returncode == 1, failed.stderr
    assert "another machine of this release runs" in failed.stderr
    assert traffic.failures() == [], traffic.failures()[:5]
    assert {body for _, body in traffic.answers[-10:]} == {"v1"}
    # as many machines as before, all of release 1: the one removed by batch 1 was made again
    assert releases_of(app_machines(client, fleet)) == ["1", "1", "1"]
    assert all(m["gateway_enabled"] for m in app_machines(client, fleet))


def test_on_a_terminal_the_progress_is_a_live_table(fleet_env):
    from support.cli import ANSI, on_terminal

    env, client, fleet = fleet_env
    code, screen = on_terminal(["deploy", "--image", "local/idle:1", "--count", "2"], env, columns=120)
    text = ANSI.sub("", screen)
    assert code == 0, text
    assert "Deploying" in text and "MACHINE" in text and "HEALTH" in text and "GATEWAY" in text
    assert "Deployed" in text
    assert releases_of(app_machines(client, fleet)) == ["1", "1"]


@pytest.mark.parametrize("strategy", ["bluegreen", "canary"])
def test_bluegreen_and_canary_lose_no_request(app_env, strategy):
    env, client, fleet, port, url, project = app_env
    write_project(project, fleet, port, "v1", count=2, strategy=strategy)
    assert deploy(env, project).returncode == 0
    write_project(project, fleet, port, "v2", count=2, strategy=strategy)
    with Traffic(url) as traffic:
        second = deploy(env, project)
        deadline = len(traffic.answers) + 20
        while len(traffic.answers) < deadline and not traffic.errors:
            traffic._stop.wait(0.01)
    assert second.returncode == 0, second.stderr
    assert traffic.failures() == [], traffic.failures()[:5]
    assert {body for _, body in traffic.answers[-10:]} == {"v2"}
    assert releases_of(app_machines(client, fleet)) == ["2", "2"]
    steps = [line for line in second.stderr.splitlines() if "] " in line]
    if strategy == "bluegreen":  # one batch: every new machine counts before any old one leaves the gateway
        assert all("[batch 1]" in line for line in steps), steps
    else:  # canary: a batch of one first
        assert any("[batch 2]" in line for line in steps), steps


def test_podman_deploy_builds_the_image_of_the_build_table_first(engine, podman_app, engine_images):
    import secrets

    env, client, fleet, url, project = podman_app
    name = f"valyent-test-built-{secrets.token_hex(3)}"
    (project / "Dockerfile").write_text(
        f"FROM {engine_images['base']}\n"
        'CMD ["sh", "-c", "mkdir -p /app && printf built > /app/index.html && exec httpd -f -p 8080 -h /app"]\n')
    doc = {"fleet": fleet, "machine": {"enable_gateway": True, "stop_timeout": 2},
           "deploy": {"count": 1, "wait_timeout": "60s"}, "build": {"context": ".", "image": name}}
    (project / "valyent.toml").write_text(tomli_w.dumps(doc))
    built = f"localhost/default/{name}"  # the sandbox tags a namespace's builds so (docs/sandbox.md)
    try:
        dry = deploy(env, project, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "step 1/" not in dry.stderr.lower()  # --dry-run builds nothing
        result = deploy(env, project, "--json")
        assert result.returncode == 0, result.stderr
        record = json.loads(result.stdout)
        assert record["image"].startswith(f"{built}:deploy-")
        assert "step 1/" in result.stderr.lower()  # the build's log (podman STEP 1/2, docker Step 1/2), then the rollout
        assert httpx.get(url).text == "built"
    finally:
        images = engine.run("images", "--format", "{{.Repository}}:{{.Tag}}", built).stdout.split()
        if images:
            engine.run("rmi", "--force", *images)


def test_an_unhealthy_release_shows_its_health_checks_output(app_env):
    env, client, fleet, port, url, project = app_env
    write_project(project, fleet, port, "v1", count=1)
    assert deploy(env, project).returncode == 0
    write_project(project, fleet, port, "v2", count=1)
    import tomllib

    data = tomllib.loads((project / "valyent.toml").read_text())
    data["machine"].update(health_cmd="/bin/sh -c 'echo the database is unreachable; exit 1'", health_interval=1,
                           health_retries=1)
    (project / "valyent.toml").write_text(tomli_w.dumps(data))
    failed = deploy(env, project)
    assert failed.returncode == 1, failed.stderr
    assert "unhealthy" in failed.stderr
    assert "exit code 1: the database is unreachable" in failed.stderr  # its health check, run once more
    assert releases_of(app_machines(client, fleet)) == ["1"]
    assert httpx.get(url).text == "v1"


def test_immediate_replaces_all_at_once_and_says_it_can_drop_requests(app_env):
    env, client, fleet, port, url, project = app_env
    write_project(project, fleet, port, "v1", count=2)
    assert deploy(env, project).returncode == 0
    write_project(project, fleet, port, "v2", count=2)
    result = deploy(env, project, "--strategy", "immediate", "--json")
    assert result.returncode == 0, result.stderr
    assert "requests can fail" in result.stderr
    assert "wait until" not in result.stderr
    assert json.loads(result.stdout)["strategy"] == "immediate"
    assert releases_of(app_machines(client, fleet)) == ["2", "2"]
