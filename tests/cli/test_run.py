"""Issue 18, `valyent machines run`: a one-shot machine for CI, against the real sandbox."""

from __future__ import annotations

import json
import sys

import pytest

from support.cli import Proc
from support.cli import run_cli


def test_rm_exit_code_and_streams(fleet_env):
    env, client, fleet = fleet_env
    result = run_cli("machines", "run", "--rm", "--image", "alpine", "--", "sh", "-c", "echo out; echo err >&2; exit 4",
                     env=env)
    assert result.returncode == 4, result.stderr
    assert result.stdout == "out\n"
    assert "err" in result.stderr.splitlines()
    assert "out" not in result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert client.machines.list(fleet) == []  # gone
    (machine,) = client.machines.list(fleet, destroyed=True)
    assert machine["config"]["workload"]["restart"]["policy"] == "never"


def test_without_rm_the_machine_stays_stopped_and_json_prints_it(fleet_env):
    env, client, fleet = fleet_env
    result = run_cli("machines", "run", "--json", "--image", "alpine", "--", "sh", "-c", "echo hidden; exit 3", env=env)
    assert result.returncode == 3, result.stderr
    machine = json.loads(result.stdout)  # the final machine object, not the log
    assert machine["state"] == "stopped"
    assert client.machines.get(fleet, machine["id"])["state"] == "stopped"


def test_a_signal_death_is_128_plus_n(fleet_env):
    """End to end; the sandbox records 143 itself, so the CLI's own -N -> 128+N is pinned with a stand-in server
    below (test_ravel_shaped_answers_unordered_events_and_a_nested_exit_code)."""
    env, _, _ = fleet_env
    result = run_cli("machines", "run", "--rm", "--image", "alpine", "--", "sh", "-c", "kill -TERM $$", env=env)
    assert result.returncode == 128 + 15, result.stderr


def test_timeout_stops_the_machine_and_exits_124(fleet_env):
    env, client, fleet = fleet_env
    result = run_cli("machines", "run", "--timeout", "1s", "--image", "alpine", "--", "sleep", "60", env=env, timeout=30)
    assert result.returncode == 124, result.stderr
    assert "--timeout" in result.stderr
    (machine,) = client.machines.list(fleet)
    assert machine["state"] == "stopped"


def test_ctrl_c_with_rm_leaves_no_machine(fleet_env):
    env, client, fleet = fleet_env
    proc = Proc(["machines", "run", "--rm", "--image", "alpine", "--", "sh", "-c", "echo started; exec sleep 600"], env)
    try:
        proc.wait_for(lambda: "started" in proc.out, what="the machine's first line")
        assert proc.interrupt() == 130, proc.stderr
    finally:
        proc.kill()
    assert "Traceback" not in proc.stderr
    assert client.machines.list(fleet) == []


def test_output_arrives_while_the_command_runs(fleet_env):
    env, client, fleet = fleet_env
    # The command writes a line, then waits for a file the test creates only after it has read that line.
    proc = Proc(["machines", "run", "--rm", "--image", "alpine", "--", sys.executable, "-c",
                 "import os, sys, time\nprint('first', flush=True)\n"
                 "while not os.path.exists('go'): time.sleep(0.05)\nprint('second')"], env)
    try:
        proc.wait_for(lambda: "first" in proc.out, what="the first line, before the command ends")
        assert proc.proc.poll() is None
        (machine,) = client.machines.list(fleet)
        assert machine["state"] == "running"
        client.fs(machine["id"]).write("go", b"")
        assert proc.finish() == 0, proc.stderr
    finally:
        proc.kill()
    assert proc.out == ["first", "second"]


def test_a_machine_that_cannot_start_fails_with_the_servers_reason(fleet_env):
    env, client, fleet = fleet_env
    result = run_cli("machines", "run", "--rm", "--image", "alpine", "--", "no-such-command-xyz", env=env)
    assert result.returncode == 1, result.stderr
    assert "could not start" in result.stderr and "no-such-command-xyz" in result.stderr
    assert client.machines.list(fleet) == []


def test_takes_creates_flags_and_valyent_toml(fleet_env, tmp_path):
    env, _, _ = fleet_env
    (tmp_path / "valyent.toml").write_text('[machine]\nimage = "alpine:3"\nenv = ["FROM_TOML=yes"]\n')
    result = run_cli("machines", "run", "--rm", "-e", "FLAG=1", "--", "sh", "-c", 'echo "$FROM_TOML $FLAG"', env=env,
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "yes 1\n"
    dry = run_cli("machines", "run", "--dry-run", "--restart", "on-failure", "--", "true", env=env, cwd=tmp_path)
    body = json.loads(dry.stdout)
    assert body["config"]["workload"]["restart"] == {"policy": "on-failure"}
    assert body["config"]["image"] == "alpine:3"


def test_detach_prints_the_id_like_create_quiet(fleet_env):
    env, client, fleet = fleet_env
    result = run_cli("machines", "run", "--detach", "--image", "alpine", "--", "sleep", "60", env=env)
    assert result.returncode == 0, result.stderr
    machine_id = result.stdout.strip()
    assert client.machines.get(fleet, machine_id)["state"] == "running"
    bad = run_cli("machines", "run", "--detach", "--rm", "--image", "alpine", "--", "true", env=env)
    assert bad.returncode == 2


@pytest.mark.parametrize("exit_code, status", [(7, 7), (-9, 137), (-15, 143), (-1, 1), (300, 1)])
def test_ravel_shaped_answers_unordered_events_and_a_nested_exit_code(tmp_path, exit_code, status):
    """Ravel's shapes, from its source (api/machines.go: MachineEvent payload `{"stopped": {"exit_code": N}}`;
    ravel/state/db/machines.go lists events without ORDER BY): a stand-in that answers them unordered. The exit
    status is the CLI's own computation (cli/exitstatus.py, issue 28 item 10): a code -N (killed by signal N, as
    a server written in Python reports it) is 128+N as in a shell, Go's -1 or anything out of range is 1."""
    import support.faultserver as faultserver
    from support.faultserver import Reply, Stream, cli_env_for

    server = faultserver.FaultServer()
    try:
        mid = "01jravelrunmachine00000000"
        machine = {"id": mid, "fleet": "fleet_01", "state": "stopped", "config": {"image": "alpine"}}
        events = [
            {"id": "e3", "type": "machine.exited", "status": "stopped", "timestamp": "2026-01-01T00:00:03Z",
             "payload": {"stopped": {"exit_code": exit_code, "exited_at": "2026-01-01T00:00:03Z"}}},
            {"id": "e1", "type": "machine.created", "status": "created", "timestamp": "2026-01-01T00:00:01Z",
             "payload": {}},
            {"id": "e2", "type": "machine.started", "status": "running", "timestamp": "2026-01-01T00:00:02Z",
             "payload": {"started": {"started_at": "2026-01-01T00:00:02Z"}}},
        ]
        line = json.dumps({"timestamp": 1767225602000, "source": "stdout", "message": "ravel says hi"}).encode()

        def handler(request):
            if request.method == "POST" and request.path.endswith("/machines"):
                return Reply(status=201, json={**machine, "state": "starting"})
            if request.path.endswith("/events"):
                return Reply(json=events)
            if request.path.endswith("/wait"):
                return Reply(json={"ok": True})
            if request.path.endswith("/logs"):
                return Stream([line + b"\n"], end="stall" if request.param("follow") == "true" else "close")
            if request.method == "DELETE":
                return Reply(json={**machine, "state": "destroyed"})
            return Reply(json=machine)

        server.handler = handler
        result = run_cli("machines", "run", "--rm", "--image", "alpine", "--", "true",
                         env=cli_env_for(server, tmp_path / "config"))
        assert result.returncode == status, result.stderr
        assert result.stdout == "ravel says hi\n"
        assert server.count("DELETE") == 1
    finally:
        server.close()


def test_debug_shows_no_traceback_for_a_run_that_succeeds_or_ends_with_its_code(fleet_env):
    env, _, _ = fleet_env
    done = run_cli("--debug", "machines", "run", "--rm", "--image", "x", "--", "true", env=env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "typer" not in done.stderr
    failed = run_cli("--debug", "machines", "run", "--rm", "--image", "x", "--", "sh", "-c", "exit 3", env=env)
    assert failed.returncode == 3 and "Traceback" not in failed.stderr


def test_piped_stdin_is_refused_as_exec_refuses_it(fleet_env):
    env, client, fleet = fleet_env
    refused = run_cli("machines", "run", "--rm", "--image", "x", "--", "cat", env=env, input="some data\n")
    assert refused.returncode == 2, refused.stderr
    assert "cannot pass stdin" in refused.stderr
    assert client.machines.list(fleet) == []  # refused before any request
    empty = run_cli("machines", "run", "--rm", "--image", "x", "--", "true", env=env, input="")
    assert empty.returncode == 0, empty.stderr  # an open, empty stdin (CI runners) is not data


# -- issue 27, item 8: the end of the log after retention pruned its start -----------------------------------------
RUN_MACHINE = "01jrunresumemachine0000000"


def _log_line(i: int, ts: int | None = None) -> bytes:
    return json.dumps({"timestamp": ts if ts is not None else 1_700_000_000_000 + i, "instance_id": "i-1",
                       "source": "stdout", "message": f"line {i}"}).encode() + b"\n"


def _serve_run(server, history: list[bytes], live: list[bytes] | None = None) -> None:
    """A machine that printed lines 1-5 live (the follow stream), then exited; its history, read at the end, is
    `history` (retention pruned its start meanwhile). It exits only once the follower has read the live lines."""
    from support.faultserver import Reply, Stream

    follows = []
    machine = {"id": RUN_MACHINE, "fleet": "web", "state": "started", "config": {"image": "alpine"}}

    def handler(request):
        path = request.path
        if path.endswith("/logs"):
            if request.param("follow") == "true":
                follows.append(request)
                if len(follows) == 1:
                    return Stream([b"".join(live or [_log_line(i) for i in range(1, 6)])], end="close")
                return Stream([], end="stall")
            return Reply(200, body=b"".join(history), headers={"Content-Type": "application/x-ndjson"})
        exited = len(follows) >= 2  # the follower came back: it has printed lines 1-5
        if path.endswith("/events"):
            return Reply(200, json=[{"type": "machine.exited", "status": "stopped", "timestamp": 1,
                                     "payload": {"stopped": {"exit_code": 0}}}] if exited else [])
        if path.endswith("/wait"):
            return Reply(200, json={"ok": True})
        if request.method == "POST" and path.endswith("/machines"):
            return Reply(200, json=machine)
        if path.endswith(f"/machines/{RUN_MACHINE}"):
            return Reply(200, json={**machine, "state": "stopped" if exited else "started"})
        if path.endswith("/fleets/web"):
            return Reply(200, json={"id": "web", "name": "web"})
        return Reply(404, json={"detail": "not here"})

    server.handler = handler


def test_run_resumes_the_log_after_the_last_line_it_printed_not_by_position(fault_server, tmp_path):
    from support.faultserver import cli_env_for

    # lines 1-3 pruned: the history holds 4-10; by position, 6-8 would be skipped
    _serve_run(fault_server, [_log_line(i) for i in range(4, 11)])
    result = run_cli("machines", "run", "--image", "alpine", "--", "seq", "10",
                     env=cli_env_for(fault_server, tmp_path / "config"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"line {i}" for i in range(1, 11)]
    assert "Warning:" not in result.stderr  # nothing was lost


def test_run_says_when_retention_pruned_lines_it_had_not_printed(fault_server, tmp_path):
    from support.faultserver import cli_env_for

    # lines 1-7 pruned: 6 and 7 were never printed; 8-10 are, with a warning
    _serve_run(fault_server, [_log_line(i) for i in range(8, 11)])
    result = run_cli("machines", "run", "--image", "alpine", "--", "seq", "10",
                     env=cli_env_for(fault_server, tmp_path / "config"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"line {i}" for i in (1, 2, 3, 4, 5, 8, 9, 10)]
    assert "Warning:" in result.stderr and "pruned" in result.stderr, result.stderr


def test_run_resumes_within_lines_of_the_same_millisecond(fault_server, tmp_path):
    from support.faultserver import cli_env_for

    # every line in the same millisecond, line 1 pruned: the lines printed at that time are skipped by what they
    # are, not by how many (a count would skip line 6 too)
    same = 1_700_000_000_000
    _serve_run(fault_server, [_log_line(i, same) for i in range(2, 11)], live=[_log_line(i, same) for i in range(1, 6)])
    result = run_cli("machines", "run", "--image", "alpine", "--", "seq", "10",
                     env=cli_env_for(fault_server, tmp_path / "config"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"line {i}" for i in range(1, 11)]
