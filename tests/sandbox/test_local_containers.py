"""The sandbox's container drivers (podman and docker): machines are containers of their image.

Every test runs once per engine (support/engine.py's `engine` fixture), skipped, saying why, where that engine or
busybox is missing, and failing instead in CI (CI=true), which installs both and starts dockerd (.ci/run). The
images come from a
busybox rootfs (tests/support/engine.py): `hello` has its own CMD, `web` serves /www with httpd on port 8080.
"""

from __future__ import annotations

import json
import secrets
import time

import httpx
import pytest

from support.env import cli_environ
from support.sandbox import Sandbox
from support.cli import run_cli
from support.util import wait_until

pytestmark = pytest.mark.usefixtures("engine_images")


def create(env, *args: str) -> str:
    r = run_cli("machines", "create", "-q", *args, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def delete(env, mid: str) -> None:
    r = run_cli("machines", "delete", "--yes", "--force", mid, env=env, timeout=60)
    assert r.returncode == 0, r.stderr


def events(env, mid: str) -> list[dict]:
    r = run_cli("machines", "events", "--json", mid, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_the_image_runs_its_own_cmd_and_exec_sees_the_container(engine, engine_env, engine_images):
    mid = create(engine_env, "--image", engine_images["hello"])
    try:
        deadline = time.monotonic() + 20
        while True:
            logs = run_cli("logs", mid, env=engine_env)
            if "hello from the image CMD" in logs.stdout or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "hello from the image CMD" in logs.stdout, logs.stdout + logs.stderr
        assert "to stderr" in logs.stdout
        assert len(engine.containers_of(mid)) == 1
        # the container's root, not the host's: busybox's rootfs has /www and no /usr
        ls = run_cli("machines", "exec", mid, "--", "ls", "/", env=engine_env)
        assert ls.returncode == 0, ls.stderr
        assert "www" in ls.stdout.split() and "usr" not in ls.stdout.split()
        code = run_cli("machines", "exec", mid, "--", "sh", "-c", "echo out; exit 3", env=engine_env)
        assert code.returncode == 3 and code.stdout == "out\n"
        missing = run_cli("machines", "exec", mid, "--", "no-such-command", env=engine_env)
        assert missing.returncode in (126, 127)
        slow = run_cli("machines", "exec", "--timeout", "1s", mid, "--", "sh", "-c", "sleep 77; echo late",
                       env=engine_env)
        assert slow.returncode == 124 and "late" not in slow.stdout
        ps = run_cli("machines", "exec", mid, "--", "ps", env=engine_env)
        assert "sleep 77" not in ps.stdout  # the timed-out command is gone from the container
    finally:
        delete(engine_env, mid)
    assert engine.containers_of(mid) == []


def test_fs_put_then_exec_cat_inside_the_container(engine, engine_env, engine_images, tmp_path):
    mid = create(engine_env, "--image", engine_images["base"], "-e", "GREETING=hi there", "--memory", "256",
                 "--", "sleep", "600")
    try:
        local = tmp_path / "note.txt"
        local.write_text("written through fs put\n")
        put = run_cli("fs", "put", mid, str(local), "/data/note.txt", env=engine_env)
        assert put.returncode == 0, put.stderr
        cat = run_cli("machines", "exec", mid, "--", "cat", "/data/note.txt", env=engine_env)
        assert cat.returncode == 0 and cat.stdout == "written through fs put\n"
        made = run_cli("machines", "exec", mid, "--", "sh", "-c", "echo made inside > /tmp/in.txt; echo $GREETING",
                       env=engine_env)
        assert made.stdout == "hi there\n"
        read = run_cli("fs", "cat", mid, "/tmp/in.txt", env=engine_env)
        assert read.returncode == 0 and read.stdout == "made inside\n"
        ls = run_cli("fs", "ls", mid, "/", env=engine_env)
        assert "www/" in ls.stdout.split()
        assert run_cli("fs", "mkdir", mid, "/made/by/fs", env=engine_env).returncode == 0
        assert run_cli("machines", "exec", mid, "--", "test", "-d", "/made/by/fs", env=engine_env).returncode == 0
        stat = run_cli("fs", "stat", "--json", mid, "/data/note.txt", env=engine_env)
        assert json.loads(stat.stdout)["size"] == len("written through fs put\n")
        assert run_cli("fs", "rm", "-r", mid, "/made", env=engine_env).returncode == 0
        assert run_cli("machines", "exec", mid, "--", "test", "-e", "/made", env=engine_env).returncode == 1
        limit = run_cli("machines", "exec", mid, "--", "sh", "-c",
                        "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
                        env=engine_env)
        assert limit.stdout.strip() == str(256 * 1024 * 1024)
    finally:
        delete(engine_env, mid)


def test_stop_by_signal_records_the_engines_exit_code_and_delete_leaves_no_container(engine, engine_env,
                                                                                       engine_images):
    script = 'trap "echo got TERM; exit 7" TERM; echo ready; while true; do sleep 0.1; done'
    mid = create(engine_env, "--image", engine_images["base"], "--", "sh", "-c", script)
    stop = run_cli("machines", "stop", mid, env=engine_env, timeout=60)
    assert stop.returncode == 0, stop.stderr
    wait = run_cli("machines", "wait", mid, "--state", "stopped", "--timeout", "30s", env=engine_env, timeout=60)
    assert wait.returncode == 0, wait.stderr
    exited = [e for e in events(engine_env, mid) if e["type"] == "machine.exited"]
    assert exited[-1]["payload"]["stopped"]["exit_code"] == 7
    assert "got TERM" in run_cli("logs", mid, env=engine_env).stdout
    assert len(engine.containers_of(mid)) == 1  # a stopped machine keeps its container (its files), as a VM its disk
    r = run_cli("machines", "delete", "--yes", mid, env=engine_env)
    assert r.returncode == 0, r.stderr
    assert engine.containers_of(mid) == []


def test_a_missing_image_or_command_fails_the_machine_with_the_engines_message(engine, engine_env, engine_images):
    # a name of this run only: a tag left by an interrupted run (or another run at the same time) must not exist
    missing = f"localhost/valyent-no-such-image-{secrets.token_hex(4)}:1"
    r = run_cli("machines", "create", "--image", missing, env=engine_env, timeout=120)
    assert r.returncode == 1
    assert "machine.prepare_failed" in r.stderr and missing.split(":")[0].split("/")[1] in r.stderr
    # the engine's message without its client's prefix (docker: `Error response from daemon:`, podman: `Error:`)
    assert f"pulling image {missing}: " in r.stderr
    assert "Error response from daemon" not in r.stderr and f"{missing}: Error" not in r.stderr
    mid = r.stderr.split("Created machine ")[1].split()[0]
    progress = [e["payload"]["prepare"]["progress"] for e in events(engine_env, mid)
                if e["type"] == "machine.prepare" and e["payload"].get("prepare")]
    assert progress and progress[0] == f"pulling image {missing}"  # the engine's lines follow
    again = run_cli("machines", "start", mid, env=engine_env, timeout=50)  # at once, with the reason (was 60 s, exit 5)
    assert again.returncode == 1 and "cannot start" in again.stderr and f"pulling image {missing}" in again.stderr
    assert f"{engine.name} pull {missing}" in again.stderr
    # once the image exists, a start pulls (prepares) again, and runs it
    engine.run("tag", engine_images["hello"], missing, check=True)
    try:
        start = run_cli("machines", "start", mid, env=engine_env, timeout=60)
        assert start.returncode == 0, start.stderr
        wait = run_cli("machines", "wait", mid, "--state", "running", "--timeout", "20s", env=engine_env, timeout=60)
        assert wait.returncode == 0, wait.stderr
        delete(engine_env, mid)
    finally:
        engine.run("rmi", missing)  # the tag only: the image keeps its other name
    r = run_cli("machines", "create", "--image", engine_images["base"], "--", "no-such-command", env=engine_env,
                timeout=120)
    assert r.returncode == 1
    assert "machine.start_failed" in r.stderr and "no-such-command" in r.stderr, r.stderr


def test_an_image_that_cannot_be_pulled_is_said_once_with_what_to_do_and_the_pull_shows(engine, engine_env,
                                                                                         engine_images):
    missing = f"localhost/valyent-no-such-image-{secrets.token_hex(4)}:1"
    r = run_cli("machines", "create", "--image", missing, env=engine_env, timeout=120)
    assert r.returncode == 1
    mid = r.stderr.split("Created machine ")[1].split()[0]
    [failure] = [e for e in events(engine_env, mid) if e["type"] == "machine.prepare_failed"]
    reason = failure["payload"]["prepare_failed"]["error"]
    engine_error = reason.split(": ", 1)[1]
    assert r.stderr.count(engine_error) == 1, r.stderr  # once: not in an event line, log excerpt and error each
    assert f"{engine.name} pull {missing}" in r.stderr and "valyent local start --driver process" in r.stderr
    assert f"(pulling image {missing})" in r.stderr  # the pull's progress, as it goes
    shown = run_cli("machines", "events", mid, env=engine_env)
    assert f"pulling image {missing}" in shown.stdout


def test_reconcile_by_label_after_kill_9(engine, tmp_path, engine_images):
    sb = Sandbox(tmp_path / "data", driver=engine.name).start()
    try:
        env = cli_environ(tmp_path / "config", sandbox=sb, fleet="default")
        mid = create(env, "--image", engine_images["base"], "--", "sleep", "600")
        [cid] = engine.containers_of(mid)
        sb.kill9()
        assert engine.running(cid) == "true"  # the container outlives a killed server...
        sb.start()
        assert engine.running(cid) == "false"  # ...until the next server finds it by its label
        state = run_cli("machines", "show", "--json", mid, env=env)
        assert json.loads(state.stdout)["state"] == "stopped"
        delete(env, mid)
        assert engine.containers_of(mid) == []
        # `valyent local stop` stops the server, which stops its containers and removes them (a machine's container
        # is made again at its next start)...
        other = create(env, "--image", engine_images["base"], "--", "sleep", "600")
        [cid] = engine.containers_of(other)
        stop = run_cli("local", "stop", "--data-dir", str(sb.data_dir), env=env, timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert sb.proc.wait(30) == 0
        assert engine.containers_of(other) == []
        # ...and with the server killed, finds them by label with the engine and stops and removes them itself
        sb.start()
        assert engine.containers_of(other) == []  # a stop by `local stop` is the user's: not resumed
        run_cli("machines", "start", other, env=env, timeout=60)
        wait = run_cli("machines", "wait", other, "--state", "running", "--timeout", "30s", env=env, timeout=60)
        assert wait.returncode == 0, wait.stderr
        [cid] = engine.containers_of(other)
        sb.kill9()
        assert engine.running(cid) == "true"
        stop = run_cli("local", "stop", "--data-dir", str(sb.data_dir), env=env, timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert engine.running(cid) in ("false", "")  # stopped (or gone): nothing of the sandbox runs
        sb.start()  # the next server agrees: the machine is stopped
        assert json.loads(run_cli("machines", "show", "--json", other, env=env).stdout)["state"] == "stopped"
    finally:
        try:
            sb.finish()
        finally:
            engine.remove_containers_of_sandbox(sb.data_dir)


def test_local_status_shows_the_driver(engine, engine_sandbox, tmp_path):
    r = run_cli("local", "status", "--json", "--data-dir", str(engine_sandbox.data_dir),
                env=cli_environ(tmp_path / "config", sandbox=engine_sandbox, fleet="default"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["driver"] == engine.name
    human = run_cli("local", "status", "--data-dir", str(engine_sandbox.data_dir),
                    env=cli_environ(tmp_path / "config", sandbox=engine_sandbox, fleet="default"))
    assert f"Driver:   {engine.name}" in human.stdout and "a container of its image per machine" in human.stdout


def test_gateway_url_answers_from_the_containers_round_robin(engine, engine_env, engine_sandbox, engine_images):
    fleet = f"gw-{secrets.token_hex(3)}"
    env = {**engine_env, "VALYENT_FLEET": fleet}
    assert run_cli("fleets", "create", fleet, env=engine_env).returncode == 0
    gw = json.loads(run_cli("gateways", "create", "--name", "web", "--port", "8080", "--json", env=env).stdout)
    a = create(env, "--image", engine_images["web"], "--enable-gateway")
    b = create(env, "--image", engine_images["base"], "--enable-gateway", "--", "sh", "-c",
               "echo second machine > /www/index.html; exec httpd -f -p 8080 -h /www")
    try:
        for mid in (a, b):  # published on loopback only
            [cid] = engine.containers_of(mid)
            ports = engine.run("port", cid).stdout
            assert "8080/tcp -> 127.0.0.1:" in ports, ports
        seen = set()
        deadline = time.monotonic() + 20
        with httpx.Client(timeout=5) as http:  # round robin per request, also on one kept-alive connection
            while len(seen) < 2 and time.monotonic() < deadline:
                r = http.get(gw["url"])
                if r.status_code == 200:
                    seen.add(r.text)
                else:
                    time.sleep(0.1)
        assert seen == {"hello from the web image\n", "second machine\n"}
        # a gateway created after the containers: their port is not published, the proxy reaches their address
        late = json.loads(run_cli("gateways", "create", "--name", "late", "--port", "8080", "--json", env=env).stdout)
        assert httpx.get(late["url"], timeout=5).text in seen
    finally:
        delete(env, a)
        delete(env, b)
        run_cli("fleets", "delete", "--yes", fleet, env=engine_env)


def test_user_restart_policy_and_auto_destroy(engine, engine_env, engine_images):
    r = run_cli("machines", "create", "-q", "-d", "--image", engine_images["base"], "--user", "nobody",
                "--restart", "on-failure", "--max-retries", "1", "--auto-destroy", "--",
                "sh", "-c", "id -u; exit 4", env=engine_env, timeout=120)
    assert r.returncode == 0, r.stderr
    mid = r.stdout.strip()
    wait = run_cli("machines", "wait", mid, "--state", "destroyed", "--timeout", "40s", env=engine_env, timeout=60)
    assert wait.returncode == 0, wait.stderr
    evs = events(engine_env, mid)
    assert [e["payload"]["stopped"]["exit_code"] for e in evs if e["type"] == "machine.exited"] == [4, 4]
    assert run_cli("logs", mid, env=engine_env).stdout.count("65534") == 2
    assert engine.containers_of(mid) == []


def test_secrets_volumes_and_health_checks_inside_the_container(engine, engine_sandbox, engine_images):
    """Over the API (Ravel's shapes): a secret in the environment, an engine volume that outlives its machine and
    that fs sees, a health check that runs inside the container."""
    secret, volume = f"s-{secrets.token_hex(3)}", f"v-{secrets.token_hex(3)}"

    def payload(cmd):
        return {"region": "local", "config": {
            "image": engine_images["base"], "guest": {"cpu_kind": "shared", "memory_mb": 256, "cpus": 1},
            "workload": {"init": {"cmd": cmd}, "secrets": [{"name": secret, "env_var": "DB_PASSWORD"}],
                         "volumes": [{"name": volume, "path": "/data"}],
                         "health_check": {"exec": ["test", "-e", "/ready"], "interval": 1, "timeout": 2,
                                          "retries": 1}}}}

    def wait_for(api, mid, key, value):
        deadline = time.monotonic() + 30
        while api.get(f"/fleets/default/machines/{mid}").json().get(key) != value:
            assert time.monotonic() < deadline, f"{key} never became {value}"
            time.sleep(0.2)

    def exec_(api, mid, *cmd):
        return api.post(f"/fleets/default/machines/{mid}/exec", json={"cmd": list(cmd), "timeout_ms": 10000}).json()

    with engine_sandbox.client() as api:
        assert api.post("/namespaces/default/secrets", json={"name": secret, "value": "hunter2"}).status_code < 300
        first = api.post("/fleets/default/machines", json=payload(["sleep", "600"])).json()
        try:
            wait_for(api, first["id"], "state", "running")
            assert exec_(api, first["id"], "sh", "-c", "echo $DB_PASSWORD")["stdout"] == "hunter2\n"
            assert exec_(api, first["id"], "sh", "-c", "echo kept > /data/file.txt")["exit_code"] == 0
            wait_for(api, first["id"], "health", "unhealthy")
            exec_(api, first["id"], "touch", "/ready")
            wait_for(api, first["id"], "health", "healthy")
            with engine_sandbox.initd_client(first["id"]) as initd:
                assert initd.get("/fs/read", params={"path": "/data/file.txt"}).content == b"kept\n"
        finally:
            api.delete(f"/fleets/default/machines/{first['id']}", params={"force": "true"})
        second = api.post("/fleets/default/machines", json=payload(["sleep", "600"])).json()
        try:
            wait_for(api, second["id"], "state", "running")
            assert exec_(api, second["id"], "cat", "/data/file.txt")["stdout"] == "kept\n"
        finally:
            api.delete(f"/fleets/default/machines/{second['id']}", params={"force": "true"})
    from valyent_cli.local.procs import sandbox_id

    engine.volume_rm(f"valyent-{sandbox_id(engine_sandbox.data_dir)[:12]}-default-{volume}")


def test_machines_run_with_the_container_driver(engine, engine_sandbox, engine_env, engine_images):
    """Issue 18 on the container driver: the image's command runs, its streams and exit code come back, `--rm`
    leaves neither machine nor container, and `--timeout` stops it with 124."""
    def machine_containers() -> set[str]:
        return set(engine.containers_of_sandbox(engine_sandbox.data_dir))  # not another run's, on the same machine

    before = machine_containers()
    live_before = {m["id"] for m in json.loads(run_cli("machines", "list", "--json", env=engine_env).stdout)}
    result = run_cli("machines", "run", "--rm", "--image", engine_images["base"], "--",
                     "sh", "-c", "echo out; echo err >&2; exit 4", env=engine_env, timeout=120)
    assert result.returncode == 4, result.stderr
    assert result.stdout == "out\n"
    assert "err" in result.stderr and "out" not in result.stderr
    live_after = {m["id"] for m in json.loads(run_cli("machines", "list", "--json", env=engine_env).stdout)}
    assert live_after == live_before  # --rm: the machine is gone...
    assert machine_containers() <= before  # ...and so is its container
    started = time.monotonic()
    timed = run_cli("machines", "run", "--timeout", "1s", "--image", engine_images["base"], "--json", "--",
                    "sleep", "60", env=engine_env, timeout=120)
    assert timed.returncode == 124, timed.stderr
    assert time.monotonic() - started < 60
    machine = json.loads(timed.stdout)
    assert machine["state"] in ("stopped", "stopping", "destroyed")
    delete(engine_env, machine["id"])
    assert engine.containers_of(machine["id"]) == []


def test_a_memory_limit_the_engine_refuses_fails_the_machine_instead_of_running_it_unlimited(engine, engine_env,
                                                                                               engine_images):
    """The engines differ: podman applies a 4 MB limit, docker refuses anything under 6 MB. Refused, the machine
    fails with docker's reason; it does not run without a limit (as where the host has no memory controller)."""
    limit = "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
    r = run_cli("machines", "run", "--rm", "--memory", "4", "--image", engine_images["base"], "--", "sh", "-c", limit,
                env=engine_env, timeout=120)
    if engine.name == "docker":
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Minimum memory limit allowed is 6MB" in r.stderr
        assert "runs without them" not in r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == str(4 * 1024 * 1024)


def test_local_start_offline_suggests_an_image_the_engine_has_not_nginx(engine, tmp_path, engine_images):
    from support.env import free_port
    from valyent_cli.local.hints import registry_reachable

    if registry_reachable() or engine.run("image", "inspect", "nginx").returncode == 0:
        pytest.skip("nginx can be pulled or is there: `--image nginx` works on this machine")
    env = cli_environ(tmp_path / "config", local_dir=tmp_path / "data")
    try:
        r = run_cli("local", "start", "--driver", engine.name, "--port", str(free_port()), env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "--image nginx" not in r.stderr
        assert "Try: valyent machines create --image " in r.stderr or "--driver process" in r.stderr
    finally:
        run_cli("local", "stop", env=env, timeout=60)
        engine.remove_containers_of_sandbox(tmp_path / "data")


def test_local_stop_leaves_no_container_behind_and_a_stopped_machine_starts_again(engine, tmp_path, engine_images):
    from support.env import free_port

    data = tmp_path / "data"
    env = cli_environ(tmp_path / "config", local_dir=data)
    try:
        r = run_cli("local", "start", "--driver", engine.name, "--port", str(free_port()), env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        running = create(env, "--image", engine_images["base"], "--", "sleep", "600")
        stopped = create(env, "--image", engine_images["base"], "--", "sleep", "600")
        assert run_cli("machines", "stop", stopped, env=env, timeout=60).returncode == 0
        assert len(engine.containers_of_sandbox(data)) == 2
        assert run_cli("local", "stop", env=env, timeout=60).returncode == 0
        assert engine.containers_of_sandbox(data) == []  # the stopped machine's container too
        r = run_cli("local", "start", "--driver", engine.name, "--port", str(free_port()), env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        again = run_cli("machines", "start", stopped, env=env, timeout=60)  # its container is made again
        assert again.returncode == 0, again.stderr
        assert running
    finally:
        run_cli("local", "stop", env=env, timeout=60)
        engine.remove_containers_of_sandbox(data)



def test_an_exec_timeout_ends_what_the_command_started_in_the_container(engine, engine_env, engine_images):
    """Issue 27, item 12: an `env -i` child (no marker in its environment) and a `setsid` one end with the exec
    that timed out, as the command itself does."""
    mid = create(engine_env, "--image", engine_images["base"], "--", "sleep", "600")
    try:
        slow = run_cli("machines", "exec", "--timeout", "1s", mid, "--", "sh", "-c",
                       "env -i sleep 7071 & setsid sleep 7072 & sleep 7073", env=engine_env)
        assert slow.returncode == 124, slow.stderr

        def left() -> str:
            ps = run_cli("machines", "exec", mid, "--", "ps", env=engine_env)
            return "" if any(f"sleep {n}" in ps.stdout for n in (7071, 7072, 7073)) else "gone"

        wait_until(left, timeout=10, message="the exec's children to end with it")
    finally:
        delete(engine_env, mid)
