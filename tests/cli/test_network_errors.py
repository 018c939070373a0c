"""Issue 7, network and server rows, as a user sees them: the real `python -m valyent_cli` against a loopback
server that fails on purpose. Each failure is one clear `Error:` line (the endpoint named where the network is at
fault), at most a `Hint:` line, the documented exit code, and no traceback. How the API client classifies each
failure is tested in test_api_errors.py and test_api_retries.py; this file is about what reaches the terminal.

Retries back off 0.5 s then 1 s, so each scenario takes seconds of waiting: they all run at once, each against a
fault server of its own, in one module fixture; each test then checks its scenario's outcome.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from support.cli import run_cli, run_main
from support.env import cli_environ, dead_port
from support.faultserver import TOKEN, Action, FaultServer, Hang, Reply, Reset

FLEET = {"id": "fleet_01", "namespace": "ns", "name": "web", "created_at": "2024-05-01T12:00:00Z", "status": "active"}
HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
    "<hr><center>nginx/1.25.3</center>\r\n</body>\r\n</html>\r\n"
)
HEAD_200 = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
PROBLEM_404 = {"Code": "NOT_FOUND", "status": 404, "title": "Not Found", "detail": "machine not found"}


def base_env(config_dir) -> dict:
    return cli_environ(config_dir, token=TOKEN, fleet="web")


@dataclass
class Scenario:
    args: list[str]
    answers: list[Action] = field(default_factory=list)
    url: str | None = None  # another endpoint than the scenario's fault server
    slow_profile: bool = False  # a profile with `timeout = 1`, made with `valyent profiles create`
    # filled in by the run
    server: FaultServer | None = None
    code: int | None = None
    out: str = ""
    err: str = ""
    elapsed: float = 0.0


def scenarios() -> dict[str, Scenario]:
    s = {
        "refused": Scenario(["fleets", "list"], url=f"http://127.0.0.1:{dead_port()}/v1"),
        "dns": Scenario(["machines", "list"], url="https://no-such-host.invalid/v1"),
        "hang-read": Scenario(["fleets", "list"], [Hang(), Hang(), Hang()], slow_profile=True),
        "hang-create": Scenario(["machines", "create", "--image", "nginx"], [Hang(), Reply(201, json={"id": "m-2"})],
                                slow_profile=True),
        "reset": Scenario(["fleets", "list"], [Reset(HEAD_200 + b'[{"id": "fleet_01", "na')] * 3),
        "reset-once": Scenario(["fleets", "list", "--json"], [Reset(HEAD_200 + b"[{"), Reply(json=[FLEET])]),
        "429": Scenario(["fleets", "list", "-q"], [
            Reply(429, json={"Code": "RESOURCES_EXHAUSTED", "detail": "slow down"}, headers={"Retry-After": "1"}),
            Reply(json=[FLEET])]),
        "malformed-json": Scenario(["fleets", "list"], [
            Reply(200, b'[{"id": "fleet_01", "name": ', headers={"Content-Type": "application/json"})]),
        "401": Scenario(["machines", "list"], [Reply(401, json={"errors": [{"message": "Unauthorized access"}]})]),
        "404-bare": Scenario(["fleets", "show", "staging"], [Reply(404)]),
        "404-machine": Scenario(["machines", "show", "01jzz"], [Reply(404, json=PROBLEM_404), Reply(json=[])]),
    }
    for pair in ((500, 502), (503, 504)):
        s[f"read-{pair[0]}-{pair[1]}"] = Scenario(["fleets", "list", "-q"], [*map(Reply, pair), Reply(json=[FLEET])])
    for status in (500, 502, 503, 504):
        s[f"create-{status}"] = Scenario(["machines", "create", "--image", "nginx"],
                                         [Reply(status), Reply(201, json={"id": "m-2", "state": "created"})])
    for status in (502, 200):
        s[f"html-{status}"] = Scenario(["fleets", "list"],
                                       [Reply(status, HTML_502, headers={"Content-Type": "text/html"})] * 3)
    return s


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    runs = scenarios()
    # tmp_path_factory is not thread-safe (its first use creates the base directory): make the dirs up front.
    config_dirs = {name: tmp_path_factory.mktemp("config") for name in runs}

    def play(item: tuple[str, Scenario]) -> None:
        name, sc = item
        sc.server = FaultServer()
        sc.server.queue(*sc.answers)
        env = base_env(config_dirs[name])
        env["VALYENT_API_URL"] = sc.url or sc.server.url + "/v1"
        if sc.slow_profile:
            made = run_cli("profiles", "create", "slow", "--timeout", "1", "--use", env=env)
            assert made.returncode == 0, made.stderr
        started = time.monotonic()
        result = run_cli(*sc.args, env=env, timeout=60)
        sc.elapsed = time.monotonic() - started
        sc.code, sc.out, sc.err = result.returncode, result.stdout, result.stderr

    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(play, runs.items()))
        yield runs
    finally:
        for sc in runs.values():
            if sc.server is not None:
                sc.server.close()


def one_error(stderr: str) -> str:
    """The `Error:` line of a failure: exactly one, first, followed by at most a hint; no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("Error: "), stderr
    assert len(lines) <= 2 and all(line.startswith("Hint: ") for line in lines[1:]), stderr
    return lines[0]


# -- network ------------------------------------------------------------------------------------------------------
def test_connection_refused_names_the_endpoint(outcome):
    sc = outcome["refused"]
    assert sc.code == 1, sc.err
    assert one_error(sc.err) == f"Error: cannot reach {sc.url.removesuffix('/v1')}: connection refused"
    assert sc.elapsed < 30  # retried with backoff (0.5 s, 1 s), then given up: bounded, even on a busy machine
    assert sc.out == ""


def test_dns_failure_names_the_host(outcome):
    sc = outcome["dns"]
    assert sc.code == 1, sc.err
    line = one_error(sc.err)
    assert "https://no-such-host.invalid" in line and "cannot resolve host 'no-such-host.invalid'" in line


def test_a_server_that_never_answers_a_read_is_bounded_by_the_timeout(outcome):
    sc = outcome["hang-read"]
    assert sc.code == 5, sc.err
    assert one_error(sc.err).startswith(f"Error: no complete answer from {sc.server.url} within 2 s (GET /v1/fleets)")
    assert "timeout" in sc.err  # the hint names the profile key
    # a read is retried, within the call's one budget of 2 x timeout: the first attempt's read timeout (1 s), a
    # backoff, and a second attempt cut at the deadline (was 3 attempts, each with 2 s of its own: the third sent
    # 4 s or more after the first). Every attempt is sent within the budget, by the server's clock (on a machine
    # busy enough to slow an attempt's start, a third one may still fit in it)
    arrivals = [r.received_at for r in sc.server.requests]
    assert len(arrivals) in (2, 3), arrivals
    assert arrivals[-1] - arrivals[0] < 2.0, arrivals
    assert 2.0 <= sc.elapsed < 30.0  # the upper bound only proves it ends (busy machines)


def test_a_server_that_never_answers_a_create_is_not_asked_twice(outcome):
    sc = outcome["hang-create"]
    assert sc.code == 5, sc.err
    assert "no answer from" in one_error(sc.err)
    assert sc.server.count("POST", "/v1/fleets/web/machines") == 1 == sc.server.count()
    assert 1.0 <= sc.elapsed < 30
    # The hint must not invite a blind retry: the create may have been made.
    assert "may still have taken effect" in sc.err and "or retry" not in sc.err


def test_a_connection_reset_mid_answer(outcome):
    sc = outcome["reset"]
    assert sc.code == 1, sc.err
    assert one_error(sc.err).startswith(f"Error: the connection to {sc.server.url} broke")
    assert sc.server.count() == 3
    assert sc.out == ""


def test_a_read_reset_once_then_answered_succeeds(outcome):
    sc = outcome["reset-once"]
    assert sc.code == 0, sc.err
    assert '"fleet_01"' in sc.out and sc.err == ""


# -- server -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["read-500-502", "read-503-504"])
def test_5xx_then_success_on_a_read(outcome, name):
    sc = outcome[name]
    assert sc.code == 0, sc.err
    assert sc.out == "fleet_01\n"
    assert sc.err == ""
    assert sc.server.count("GET", "/v1/fleets") == 3


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_on_a_create_is_sent_once_and_reported(outcome, status):
    sc = outcome[f"create-{status}"]
    assert sc.code == 1, sc.err
    line = one_error(sc.err)
    assert f"(HTTP {status} from {sc.server.url})" in line
    assert "may still have taken effect" in sc.err  # not "safe to retry": it may exist now
    assert sc.server.count("POST", "/v1/fleets/web/machines") == 1 == sc.server.count()
    assert sc.out == ""


def test_429_retry_after_is_waited(outcome):
    sc = outcome["429"]
    assert sc.code == 0, sc.err
    assert sc.out == "fleet_01\n"
    first, second = sc.server.requests
    assert second.received_at - first.received_at >= 0.95  # the asked second, not the 0.5 s backoff


def test_429_retry_after_is_capped(tmp_path, fault_server, monkeypatch):
    """A server asking for a day: the CLI waits the cap (30 s), not a day. Sleeps are recorded, not slept."""
    import valyent_cli.api._transport as client_module  # the request loop, which sleeps between retries
    from valyent_cli.api.client import MAX_RETRY_AFTER

    slept: list[float] = []

    class Clock:
        monotonic = staticmethod(time.monotonic)
        time = staticmethod(time.time)
        sleep = staticmethod(slept.append)

    monkeypatch.setattr(client_module, "time", Clock)
    fault_server.queue(Reply(429, headers={"Retry-After": "86400"}), Reply(json=[FLEET]))
    env = {**base_env(tmp_path / "config"), "VALYENT_API_URL": fault_server.url + "/v1"}
    result = run_main(["fleets", "list", "-q"], env)
    assert result.code == 0, result.err
    assert result.out == "fleet_01\n"
    assert slept == [MAX_RETRY_AFTER] == [30.0]


def test_200_with_malformed_json(outcome):
    sc = outcome["malformed-json"]
    assert sc.code == 1, sc.err
    line = one_error(sc.err)
    assert "not JSON" in line and f"{sc.server.url}/v1/fleets" in line
    assert sc.server.count() == 1  # a well-formed answer with a bad body is not retried


@pytest.mark.parametrize("status", [502, 200])
def test_an_html_page_is_reported_without_markup(outcome, status):
    sc = outcome[f"html-{status}"]
    assert sc.code == 1, sc.err
    line = one_error(sc.err)
    assert "<" not in sc.err and "nginx" not in sc.err
    if status == 502:
        assert line == f"Error: Bad Gateway (HTTP 502 from {sc.server.url})"
    else:
        assert "an HTML page titled '502 Bad Gateway'" in line


def test_401_exits_3_with_what_to_run(outcome):
    sc = outcome["401"]
    assert sc.code == 3, sc.err
    assert one_error(sc.err) == "Error: not authenticated: Unauthorized access"
    assert "valyent auth login" in sc.err
    assert sc.server.count() == 1


def test_404_exits_4_with_what_was_not_found(outcome):
    bare = outcome["404-bare"]  # no body to say what
    assert bare.code == 4, bare.err
    assert one_error(bare.err) == "Error: not found: Not Found (/v1/fleets/staging)"
    machine = outcome["404-machine"]  # not an id, and no id starts with it
    assert machine.code == 4, machine.err
    assert "01jzz" in one_error(machine.err) and "web" in machine.err
