"""`valyent logs`: history, --json verbatim, filters, the fleet interleaved by time, live follow and reconnects.

History runs in this process through main() for speed; follows run as real processes, stopped with SIGINT.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import threading
import time
from datetime import datetime, timezone

import pytest

from support.util import machine_payload, wait_until
from support.cli import Result, ok, read_then_close, run_main, spawn

LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (.*)$")
FLEET_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (.*)$")

A_CMD = "echo a1; echo a-err >&2; sleep 0.1; echo a2; sleep 0.1; echo a3; sleep 600"
B_CMD = "echo b1; sleep 0.1; echo b2; sleep 0.1; echo b3; sleep 600"
TICKER = "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.3; done"


def _client(sandbox):
    from valyent_cli.api import Client

    return Client(sandbox.token, endpoint=sandbox.url, initd_endpoint=sandbox.initd)


def _start(client, fleet_id: str, script: str) -> str:
    created = client.machines.create(fleet_id, machine_payload(["sh", "-c", script], image="busybox"))
    return created["id"]


@pytest.fixture(scope="module")
def fleet(sandbox):
    """A fleet with two machines that wrote a few lines each (one to stderr) and then went quiet."""
    client = _client(sandbox)
    created = client.fleets.create(f"logs-{secrets.token_hex(3)}")
    a = _start(client, created["id"], A_CMD)
    b = _start(client, created["id"], B_CMD)
    for mid, count in ((a, 4), (b, 3)):
        client.machines.wait(created["id"], mid, "running", 30)
        wait_until(lambda: len(client.machines.logs(created["id"], mid)) >= count, 15, message=f"{mid}'s lines")
    yield {"name": created["name"], "id": created["id"], "a": a, "b": b, "client": client}
    for mid in (a, b):
        client.machines.delete(created["id"], mid, force=True)
    client.close()


@pytest.fixture(scope="module")
def live(sandbox):
    """A fleet with a machine that prints `tick N` every 0.3 s."""
    client = _client(sandbox)
    created = client.fleets.create(f"logs-live-{secrets.token_hex(3)}")
    ticker = _start(client, created["id"], TICKER)
    client.machines.wait(created["id"], ticker, "running", 30)
    extra: list[str] = []
    yield {"name": created["name"], "id": created["id"], "ticker": ticker, "client": client, "extra": extra}
    for mid in [ticker, *extra]:
        client.machines.delete(created["id"], mid, force=True)
    client.close()


@pytest.fixture()
def cli(cli_env, fleet):
    """Run `valyent ARGS` in this process, through main(), with VALYENT_FLEET set to the module's fleet."""
    env = {**cli_env, "VALYENT_FLEET": fleet["name"]}

    def run(*args: str, extra_env: dict[str, str] | None = None) -> Result:
        result = run_main(list(args), {**env, **(extra_env or {})})
        assert "Traceback" not in result.err, result.err
        return result

    return run


def raw_ndjson(sandbox, fleet: dict, mid: str) -> list[str]:
    """The machine's log exactly as the server sends it."""
    with sandbox.client() as http:
        answer = http.get(f"/fleets/{fleet['id']}/machines/{mid}/logs", headers={"Accept": "application/x-ndjson"})
        answer.raise_for_status()
        return [line for line in answer.text.split("\n") if line]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# -- history ------------------------------------------------------------------------------------------------------
def test_history_plain_lines(cli, fleet, sandbox):
    result = ok(cli("logs", fleet["a"]))
    lines = result.out.splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [m.group(2) for m in parsed] == ["a1", "a-err", "a2", "a3"]
    entries = [json.loads(line) for line in raw_ndjson(sandbox, fleet, fleet["a"])]
    assert [m.group(1) for m in parsed] == [iso(e["timestamp"]) for e in entries]
    assert result.err == ""


def test_json_is_ndjson_verbatim(cli, fleet, sandbox):
    result = ok(cli("logs", fleet["a"][:10], "--json"))
    assert result.out.splitlines() == raw_ndjson(sandbox, fleet, fleet["a"])


def test_source_filter(cli, fleet, sandbox):
    assert [LINE.match(x).group(2) for x in ok(cli("logs", fleet["a"], "--source", "stderr")).out.splitlines()] == [
        "a-err"
    ]
    assert [LINE.match(x).group(2) for x in ok(cli("logs", fleet["a"], "--source", "stdout")).out.splitlines()] == [
        "a1", "a2", "a3"
    ]
    raw = raw_ndjson(sandbox, fleet, fleet["a"])
    as_json = ok(cli("logs", fleet["a"], "--json", "--source", "stderr")).out.splitlines()
    assert as_json == [line for line in raw if json.loads(line)["source"] == "stderr"]


def test_since_filter(cli, fleet, sandbox):
    entries = [json.loads(line) for line in raw_ndjson(sandbox, fleet, fleet["a"])]
    assert len(ok(cli("logs", fleet["a"], "--since", "1h")).out.splitlines()) == 4
    assert len(ok(cli("logs", fleet["a"], "--since", "1h30m")).out.splitlines()) == 4
    from_a2 = iso(next(e["timestamp"] for e in entries if e["message"] == "a2"))
    shown = ok(cli("logs", fleet["a"], "--since", from_a2)).out.splitlines()
    assert [LINE.match(x).group(2) for x in shown] == ["a2", "a3"]
    assert ok(cli("logs", fleet["a"], "--since", "2999-01-01T00:00:00Z")).out == ""
    assert ok(cli("logs", fleet["a"], "--since", "2999-01-01T00:00:00+02:00", "--json")).out == ""


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--since", "10"], "--since"),
        (["--since", "ten minutes"], "--since"),
        (["--since", "10x"], "--since"),
        (["--since", "2024-13-45T00:00:00Z"], "--since"),
        (["--since", ""], "--since"),
        (["--source", "stdin"], "--source"),
        (["--source", ""], "--source"),
        (["-f", "--since", "5q"], "--since"),
    ],
)
def test_bad_values_exit_2_before_any_request(cli, args, flag):
    # An endpoint that refuses connections: had a request been sent, this would be exit 1.
    result = cli("logs", "somemachine", *args, extra_env={"VALYENT_API_URL": "http://127.0.0.1:9/v1"})
    assert result.code == 2, result.err
    assert flag in result.err
    assert result.out == ""


def test_bad_idle_timeout_env_is_usage_error(cli):
    result = cli("logs", "-f", "somemachine",
                 extra_env={"VALYENT_API_URL": "http://127.0.0.1:9/v1", "VALYENT_STREAM_IDLE_TIMEOUT": "soon"})
    assert result.code == 2 and "VALYENT_STREAM_IDLE_TIMEOUT" in result.err


def test_unknown_machine_is_exit_4(cli):
    result = cli("logs", "zzzzzzzz")
    assert result.code == 4 and "zzzzzzzz" in result.err


def test_fleet_interleaved_by_time_with_prefixes(cli, fleet, sandbox):
    a, b = fleet["a"], fleet["b"]
    lines = ok(cli("logs")).out.splitlines()
    parsed = [FLEET_LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [p.group(1) for p in parsed] == sorted(p.group(1) for p in parsed)  # ISO-8601 sorts as time
    # each line names its machine by a short id: 12 characters, as docker, unless two machines share them
    # (issue 24, item 28)
    assert {len(p.group(2)) for p in parsed} == {12} or a[:12] == b[:12]
    whose = {label: next(m for m in (a, b) if m.startswith(label)) for label in {p.group(2) for p in parsed}}
    assert sorted((whose[p.group(2)], p.group(3)) for p in parsed) == sorted(
        [(a, "a1"), (a, "a-err"), (a, "a2"), (a, "a3"), (b, "b1"), (b, "b2"), (b, "b3")]
    )

    bare = ok(cli("logs", "--no-prefix")).out.splitlines()
    assert len(bare) == 7 and not any(a in line or b in line for line in bare)
    assert all(LINE.match(line) for line in bare)

    as_json = ok(cli("logs", "--json")).out.splitlines()
    expected = [f'{{"machine_id":"{m}",' + line[1:] for m in (a, b) for line in raw_ndjson(sandbox, fleet, m)]
    assert sorted(as_json) == sorted(expected)  # each entry verbatim, but for its machine's id first (issue 14)
    stamps = [json.loads(line)["timestamp"] for line in as_json]
    assert stamps == sorted(stamps)

    only_err = ok(cli("logs", "--source", "stderr")).out.splitlines()
    assert [FLEET_LINE.match(x).group(2, 3) for x in only_err] == [(next(k for k, v in whose.items() if v == a), "a-err")]


def test_fleet_history_spools_machines_beyond_the_stream_limit(cli, monkeypatch):
    """Past MAX_STREAMS machines, logs are read into temporary files first: the same lines, the same order."""
    from valyent_cli.cli import logmerge as logs

    streamed = ok(cli("logs")).out
    monkeypatch.setattr(logs, "MAX_STREAMS", 1)
    assert ok(cli("logs")).out == streamed
    monkeypatch.setattr(logs, "MAX_STREAMS", 0)
    assert ok(cli("logs")).out == streamed


# -- live ---------------------------------------------------------------------------------------------------------
class Follow:
    """`valyent logs -f ...` as a process, its stdout read line by line in a thread."""

    def __init__(self, args: list[str], env: dict) -> None:
        self.proc = spawn(["logs", "-f", *args], env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float = 15, what: str = "a line"):
        return wait_until(lambda: next((x for x in list(self.lines) if predicate(x)), None), timeout,
                          interval=0.02, message=f"{what}; got {self.lines[-5:]}")

    def interrupt(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self._reader.join(5)
        return err


def test_follow_prints_new_lines_live_until_ctrl_c(cli_env, live):
    env = {**cli_env, "VALYENT_FLEET": live["name"]}
    started = time.time()
    follow = Follow([live["ticker"]], env)
    try:
        # A line the machine wrote after the follow began reaches stdout while it is still running.
        follow.wait_for(lambda x: (m := LINE.match(x)) and _seconds(m.group(1)) > started + 0.6, what="a new line")
        assert follow.proc.poll() is None
    finally:
        err = follow.interrupt()
    assert follow.proc.returncode == 130, err
    assert "Traceback" not in err
    assert "Interrupted." in err
    ticks = [int(LINE.match(x).group(2).split()[1]) for x in follow.lines]
    assert ticks == list(range(1, len(ticks) + 1))  # the history, then the live lines: none lost, none twice


def test_reader_going_away_ends_a_follow_quietly(cli_env, live):
    """`valyent logs -f M | head -1`: when the pipe closes, exit 0 with nothing on stderr."""
    code, err = read_then_close(["logs", "-f", live["ticker"]], {**cli_env, "VALYENT_FLEET": live["name"]},
                                lambda out: out.readline())
    assert code == 0, err
    assert err == ""


def test_follow_whole_fleet_with_prefixes_and_new_machines(cli_env, live):
    env = {**cli_env, "VALYENT_FLEET": live["name"]}
    client, ticker = live["client"], live["ticker"]
    follow = Follow([], env)
    try:
        follow.wait_for(lambda x: (m := FLEET_LINE.match(x)) and ticker.startswith(m.group(2)), what="a prefixed line")
        newcomer = _start(client, live["id"], "echo hello from the newcomer; sleep 600")
        live["extra"].append(newcomer)
        follow.wait_for(lambda x: (m := FLEET_LINE.match(x)) and newcomer.startswith(m.group(2))
                        and m.group(3) == "hello from the newcomer", timeout=20, what="the new machine's line")
    finally:
        err = follow.interrupt()
    assert follow.proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"{newcomer}: new machine" in err
    ticks = [int(m.group(3).split()[1]) for x in follow.lines
             if (m := FLEET_LINE.match(x)) and ticker.startswith(m.group(2)) and not newcomer.startswith(m.group(2))]
    assert ticks == list(range(1, len(ticks) + 1))


def test_follow_survives_cut_and_stalled_streams(fault_server, cli_env):
    """The stream is cut mid-line, then stalls past the idle timeout: each line is printed once, a note each time."""
    from support.faultserver import Reply, Stream

    machine_id = "01jlogsfaultmachine000000"
    entries = [{"timestamp": 1_700_000_000_000 + i, "source": "stdout", "message": f"seq {i}"} for i in range(1, 6)]
    lines = [json.dumps(e).encode() + b"\n" for e in entries]
    streams = [
        Stream([lines[0], lines[1], lines[2][:10]], end="cut"),  # cut in the middle of the third line
        Stream([*lines[:3]], end="stall"),  # the replay, one new line, then silence
        Stream([*lines[:5]], end="stall"),
    ]

    def handler(request):
        if request.path.endswith(f"/machines/{machine_id}"):
            return Reply(json={"id": machine_id, "fleet": "fleet_x", "state": "running"})
        if request.path.endswith("/logs"):
            return streams.pop(0) if streams else Stream([*lines], end="stall")
        return None

    fault_server.handler = handler
    env = {**cli_env, "VALYENT_API_URL": fault_server.url + "/v1", "VALYENT_FLEET": "f",
           "VALYENT_STREAM_IDLE_TIMEOUT": "1"}
    follow = Follow([machine_id], env)
    try:
        # the reconnection notes went to stderr before the lines of each new stream: the last line is the condition
        follow.wait_for(lambda x: x.endswith("seq 5"), timeout=20, what="the last line")
    finally:
        err = follow.interrupt()
    assert follow.proc.returncode == 130, err
    assert "Traceback" not in err
    assert [LINE.match(x).group(2) for x in follow.lines] == [f"seq {i}" for i in range(1, 6)]
    assert [LINE.match(x).group(1) for x in follow.lines][0] == "2023-11-14T22:13:20.001Z"
    assert err.count("reconnecting") >= 2, err


def _seconds(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
