"""Issue 7, signals: Ctrl-C (SIGINT) while the CLI follows a log, waits for a state, waits for a new machine to
run, and downloads a file. Each ends at once with exit 130, `Interrupted.` on stderr, no traceback, no partial
file, and its connection closed (the fault server sees the client hang up)."""

from __future__ import annotations

import json
import signal

import pytest
from support.cli import Proc
from support.faultserver import Hang, Reply, Stream, cli_env_for, has_partial, serve_file
from support.util import wait_until

MACHINE = "01jsignalsmachine00000000"


@pytest.fixture()
def env(tmp_path, fault_server) -> dict:
    return cli_env_for(fault_server, tmp_path / "config")


def machine(state: str = "running") -> Reply:
    return Reply(json={"id": MACHINE, "fleet": "fleet_01", "state": state, "config": {"image": "nginx"}})


def interrupted(proc: Proc) -> None:
    code = proc.interrupt()
    assert code == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.err and proc.err[-1] == "Interrupted.", proc.stderr


def held_request_closed(server, path_end: str) -> None:
    held = [r for r in server.requests if r.path.endswith(path_end)]
    assert held, f"no request to {path_end}"
    wait_until(lambda: held[-1].closed_by_client, 5, message="the client to close its connection")


def test_ctrl_c_during_logs_follow(env, fault_server):
    lines = [json.dumps({"timestamp": 1_700_000_000_000 + i, "message": f"seq {i}"}).encode() + b"\n"
             for i in range(1, 4)]

    def handler(request):
        if request.path.endswith("/logs"):
            return Stream(lines, end="stall")
        if request.path.endswith(f"/machines/{MACHINE}"):
            return machine()
        return None

    fault_server.handler = handler
    proc = Proc(["logs", "-f", MACHINE], env)
    try:
        proc.wait_for(lambda: len(proc.out) >= 3, what="the three lines")
        interrupted(proc)
    finally:
        proc.kill()
    assert [line.split(" ", 1)[1] for line in proc.out] == ["seq 1", "seq 2", "seq 3"]
    held_request_closed(fault_server, "/logs")


def test_ctrl_c_during_machines_wait(env, fault_server):
    def handler(request):
        if request.path.endswith("/wait"):
            return Hang()  # the long poll, held by the server
        if request.path.endswith(f"/machines/{MACHINE}"):
            return machine("starting")
        return None

    fault_server.handler = handler

    def waits() -> int:
        return sum(r.path.endswith(f"/machines/{MACHINE}/wait") for r in fault_server.requests)

    proc = Proc(["machines", "wait", MACHINE, "--state", "running", "--timeout", "10m"], env)
    try:
        proc.wait_for(lambda: waits(), what="the long poll")  # the CLI is in its request: interrupt it there
        interrupted(proc)
    finally:
        proc.kill()
    held_request_closed(fault_server, "/wait")
    assert waits() == 1


def test_ctrl_c_while_create_waits_for_the_machine_to_run(env, fault_server):
    created_event = {"id": "ev1", "machine_id": MACHINE, "status": "created", "type": "machine.created",
                     "origin": "user", "payload": {}, "timestamp": "2024-05-01T12:00:00Z"}

    def handler(request):
        if request.method == "POST" and request.path == "/v1/fleets/web/machines":
            return Reply(201, json={"id": MACHINE, "fleet": "fleet_01", "state": "created"})
        if request.path.endswith("/events"):
            return Reply(json=[created_event])  # it never gets further
        if request.path.endswith(f"/machines/{MACHINE}"):
            return machine("created")
        return None

    fault_server.handler = handler
    proc = Proc(["machines", "create", "--image", "nginx"], env)
    try:
        proc.wait_for(lambda: sum(r.path.endswith("/events") for r in fault_server.requests) >= 2,
                      what="the create's wait")
        interrupted(proc)
    finally:
        proc.kill()
    assert fault_server.count("POST") == 1
    assert proc.out == []  # the machine is printed once it runs, never half
    assert any(MACHINE in line for line in proc.err)  # but its id was said, so the user can find it


def test_ctrl_c_during_a_download_leaves_no_partial_file(env, fault_server, tmp_path):
    serve_file(fault_server, MACHINE, fleet="fleet_01")  # still running when Ctrl-C comes
    work = tmp_path / "work"
    work.mkdir()
    target = work / "big.bin"
    target.write_bytes(b"the previous version")
    proc = Proc(["fs", "get", MACHINE, "/big.bin", str(target), "--force"], env)
    try:
        proc.wait_for(lambda: has_partial(work), what="the download to start")
        interrupted(proc)
    finally:
        proc.kill()
    assert [p.name for p in work.iterdir()] == ["big.bin"]  # no temporary file left beside it
    assert target.read_bytes() == b"the previous version"  # and the old file untouched


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_or_sighup_during_a_download_leaves_no_partial_file(env, fault_server, tmp_path, sig, code):
    """Issue 17, item 10: a download ended by SIGTERM (a service manager) or SIGHUP (the terminal went away)."""
    serve_file(fault_server, MACHINE)
    work = tmp_path / "work"
    work.mkdir()
    target = work / "big.bin"
    proc = Proc(["fs", "get", MACHINE, "/big.bin", str(target)], env)
    try:
        proc.wait_for(lambda: has_partial(work), what="the download to start")
        proc.proc.send_signal(sig)
        assert proc.finish() == code, proc.stderr
    finally:
        proc.kill()
    assert list(work.iterdir()) == []
    assert "Traceback" not in proc.stderr and "Terminated." in proc.stderr


def test_ctrl_c_during_exec_says_the_command_goes_on(env, fault_server):
    def handler(request):
        if request.path.endswith("/exec"):
            return Hang()
        if request.path.endswith(f"/machines/{MACHINE}"):
            return machine()
        return None

    fault_server.handler = handler
    proc = Proc(["machines", "exec", MACHINE, "--timeout", "5m", "--", "sleep", "100"], env)
    try:
        proc.wait_for(lambda: any(r.path.endswith("/exec") for r in fault_server.requests), what="the exec")
        interrupted(proc)
    finally:
        proc.kill()
    assert f"the command goes on in machine {MACHINE}" in proc.stderr and "5m" in proc.stderr


def test_ctrl_c_while_following_a_build_cancels_it(env, fault_server, tmp_path):
    build = {"id": "build_01sig", "full_image": "app:latest", "status": "building", "namespace": "default"}

    def handler(request):
        if request.path.endswith("/cancel"):
            return Reply(204)
        if request.path.endswith("/logs"):
            return Stream([b"Step 1/2 : FROM scratch\n"], end="stall")
        if request.path.endswith("/builds") and request.method == "POST":
            return Reply(json=build)
        return None

    fault_server.handler = handler
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM scratch\n")
    proc = Proc(["builds", "create", str(tmp_path / "ctx"), "--image", "app", "--registry", "registry.example.com/team"], env)
    try:
        proc.wait_for(lambda: "Step 1/2" in proc.stderr, what="the build log")
        interrupted(proc)
    finally:
        proc.kill()
    assert any(r.path.endswith("/build_01sig/cancel") and r.method == "POST" for r in fault_server.requests)
    assert "Cancelled build build_01sig" in proc.stderr
