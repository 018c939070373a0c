"""The retry policy of the Client docstring, shown against a loopback server that fails on purpose."""

from __future__ import annotations

import threading
import time

import pytest
from support.faultserver import TOKEN, FaultServer, Hang, Reply, Reset, client_for, free_port

from valyent_cli.api import errors
from valyent_cli.api.client import BACKOFF_BASE, BACKOFF_MAX, MAX_RETRY_AFTER, Client, backoff_delay

FLEET = {"id": "fleet-1", "name": "my-fleet"}
DEADLINE = {"Code": "DEADLINE_EXCEEDED", "status": 408, "title": "Request Timeout", "detail": "deadline exceeded"}


def test_documented_defaults():
    client = Client("t")
    # literals, as README.md and docs/reliability.md state them ("Retry-After honoured up to 30 s")
    assert (client.max_retries, client.max_retry_after, client.timeout) == (2, 30.0, 30.0)
    assert MAX_RETRY_AFTER == 30.0
    assert (client.backoff_base, client.backoff_max) == (BACKOFF_BASE, BACKOFF_MAX) == (0.5, 8.0)
    for attempt, cap in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delay = backoff_delay(attempt)
        assert 0.75 * cap <= delay <= cap
    client.close()


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_a_read_is_retried_then_succeeds(fault_server, status):
    fault_server.queue(Reply(status), Reply(json=[FLEET]))
    with client_for(fault_server) as client:
        assert client.fleets.list() == [FLEET]
    assert fault_server.count("GET", "/v1/fleets") == 2


def test_a_read_gives_up_after_max_retries(fault_server):
    fault_server.queue(Reply(503), Reply(502), Reply(500), Reply(json=[FLEET]))
    with client_for(fault_server, max_retries=2) as client:
        with pytest.raises(errors.ServerError) as info:
            client.fleets.list()
    assert info.value.status == 500
    assert fault_server.count() == 3


def test_no_retries_when_max_retries_is_zero(fault_server):
    fault_server.queue(Reply(503), Reply(json=[FLEET]))
    with client_for(fault_server, max_retries=0) as client:
        with pytest.raises(errors.ServerError):
            client.fleets.list()
    assert fault_server.count() == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 501])
def test_client_errors_are_not_retried(fault_server, status):
    fault_server.queue(Reply(status), Reply(json=[FLEET]))
    with client_for(fault_server) as client:
        with pytest.raises(errors.ApiError):
            client.fleets.list()
    assert fault_server.count() == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408])
def test_a_create_that_reached_the_server_is_sent_once(fault_server, status):
    fault_server.queue(Reply(status), Reply(201, json={"id": "m-1"}))
    with client_for(fault_server, max_retries=5) as client:
        with pytest.raises(errors.ApiError) as info:
            client.machines.create("fleet-1", {"region": "gra-1", "config": {"image": "nginx"}})
    assert info.value.status == status
    assert fault_server.count("POST", "/v1/fleets/fleet-1/machines") == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.fleets.create("f"),
        lambda c: c.gateways.create("f", {"name": "web", "target_port": 80}),
        lambda c: c.machines.exec("f", "m", ["rm", "-rf", "/tmp/x"]),
        lambda c: c.fs("m").exec(["true"]),
        lambda c: c.fs("m").write("/x", b"data"),
    ],
    ids=["fleet-create", "gateway-create", "exec", "initd-exec", "upload"],
)
def test_non_idempotent_calls_are_sent_once(fault_server, call):
    fault_server.queue(Reply(502), Reply(json={}))
    with client_for(fault_server, max_retries=5) as client:
        with pytest.raises(errors.ServerError):
            call(client)
    assert fault_server.count() == 1


def test_a_create_reset_mid_answer_is_not_sent_again(fault_server):
    fault_server.queue(Reset(b"HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{\"id\""), Reply(201, json=FLEET))
    with client_for(fault_server, max_retries=5) as client:
        with pytest.raises(errors.TransportError):
            client.fleets.create("my-fleet")
    assert fault_server.count("POST") == 1


def test_idempotent_posts_are_retried(fault_server):
    fault_server.queue(Reply(503), Reply(204), Reply(502), Reply(204), Reply(500), Reply(204))
    with client_for(fault_server) as client:
        client.machines.start("f", "m")
        client.machines.stop("f", "m", "SIGTERM", 5)
        client.fs("m").mkdir("/d")
    assert [r.path.rsplit("/", 1)[1] for r in fault_server.requests] == ["start", "start", "stop", "stop", "mkdir", "mkdir"]
    assert fault_server.requests[2].body == fault_server.requests[3].body == b'{"signal":"SIGTERM","timeout":5}'


def test_a_read_reset_mid_answer_is_retried(fault_server):
    fault_server.queue(Reset(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[{\"id\""), Reply(json=[FLEET]))
    with client_for(fault_server) as client:
        assert client.fleets.list() == [FLEET]
    assert fault_server.count() == 2


def test_retry_after_is_honoured(fault_server):
    fault_server.queue(Reply(429, headers={"Retry-After": "1"}), Reply(json=[FLEET]))
    with client_for(fault_server) as client:  # backoffs are milliseconds: only Retry-After can make it wait
        started = time.monotonic()
        assert client.fleets.list() == [FLEET]
        elapsed = time.monotonic() - started
    assert 0.95 <= elapsed < 3.5
    assert fault_server.count() == 2


def test_retry_after_is_capped(fault_server):
    fault_server.queue(Reply(503, headers={"Retry-After": "86400"}), Reply(json=[FLEET]))
    with client_for(fault_server, max_retry_after=0.2) as client:
        started = time.monotonic()
        assert client.fleets.list() == [FLEET]
        elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 2.5


def test_retry_after_as_an_http_date(fault_server):
    from email.utils import formatdate

    fault_server.queue(Reply(429, headers={"Retry-After": formatdate(time.time() + 3600, usegmt=True)}), Reply(json=[]))
    with client_for(fault_server, max_retry_after=0.1) as client:
        started = time.monotonic()
        assert client.fleets.list() == []
    assert 0.05 <= time.monotonic() - started < 2.5


def test_a_refused_create_is_retried_because_nothing_reached_the_server():
    """Connection refused, then the server comes up: a create that never reached it is sent, once."""
    port = free_port()
    servers: list[FaultServer] = []

    def start_server_after_first_failure(exchange):
        if exchange.status is None and not servers:
            server = FaultServer(port)
            server.queue(Reply(201, json=FLEET))
            servers.append(server)

    client = client_for(f"http://127.0.0.1:{port}", max_retries=3, debug_hook=start_server_after_first_failure)
    try:
        fleet = client.fleets.create("my-fleet")
        assert fleet.id == "fleet-1"
        assert servers[0].count("POST", "/v1/fleets") == 1
        assert servers[0].last.json() == {"name": "my-fleet"}
    finally:
        client.close()
        for server in servers:
            server.close()


def test_an_upload_from_a_stream_is_not_replayed(fault_server, tmp_path):
    """A file-object body cannot be rewound safely by the client: even an idempotent-looking failure is raised."""
    source = tmp_path / "f"
    source.write_bytes(b"x" * 1000)
    fault_server.queue(Reply(503), Reply(204))
    with client_for(fault_server, max_retries=5) as client, open(source, "rb") as f:
        with pytest.raises(errors.ServerError):
            client.fs("m").write("/f", f)
    assert fault_server.count() == 1


# -- wait: the long poll ------------------------------------------------------------------------------------------
def _wait_server(server: FaultServer, succeed_on: int | None = None) -> None:
    """Answer wait polls with 408 DEADLINE_EXCEEDED at once (a real server would hold each for `timeout` s)."""
    polls = []

    def handler(request):
        polls.append(request)
        if succeed_on is not None and len(polls) == succeed_on:
            return Reply(json={"ok": True})
        return Reply(408, json=DEADLINE)

    server.handler = handler


@pytest.mark.parametrize(
    "timeout, polls",
    [(61, ["60", "1"]), (150, ["60", "60", "30"]), (60, ["60"]), (5, ["5"]), (0.5, ["1"]), (120, ["60", "60"])],
)
def test_wait_loops_the_long_poll_then_times_out(fault_server, timeout, polls):
    _wait_server(fault_server)
    with client_for(fault_server) as client:
        with pytest.raises(errors.TimeoutError) as info:
            client.machines.wait("fleet-1", "m-1", "stopped", timeout)
    assert [r.param("timeout") for r in fault_server.requests] == polls
    assert all(r.param("status") == "stopped" for r in fault_server.requests)
    assert all(r.path == "/v1/fleets/fleet-1/machines/m-1/wait" for r in fault_server.requests)
    assert "m-1" in str(info.value) and "stopped" in str(info.value)
    assert not isinstance(info.value, errors.ApiError)  # the CLI maps it to exit 5 like any timeout


def test_wait_returns_when_a_later_poll_succeeds(fault_server):
    _wait_server(fault_server, succeed_on=3)
    with client_for(fault_server) as client:
        machine_wait = client.machines.wait("fleet-1", "m-1", "stopped", 300)
    assert machine_wait is None
    assert [r.param("timeout") for r in fault_server.requests] == ["60", "60", "60"]


def test_wait_408_is_not_retried_but_5xx_is(fault_server):
    answers = iter([Reply(408, json=DEADLINE), Reply(503), Reply(json={"ok": True})])
    fault_server.handler = lambda r: next(answers)
    with client_for(fault_server) as client:
        client.machines.wait("fleet-1", "m-1", "stopped", 90)
    assert [r.param("timeout") for r in fault_server.requests] == ["60", "30", "30"]


def test_wait_timeout_is_real_time_bounded(fault_server):
    """A server that holds the poll: the wait ends with TimeoutError close to the asked timeout."""
    fault_server.handler = lambda r: Reply(408, json=DEADLINE, delay=float(r.param("timeout")))
    with client_for(fault_server) as client:
        started = time.monotonic()
        with pytest.raises(errors.TimeoutError):
            client.machines.wait("fleet-1", "m-1", "destroyed", 1)
        elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 3.5
    assert fault_server.count() == 1


def test_bound_machine_wait(fault_server):
    fault_server.queue(Reply(json={"id": "m-1", "fleet": "fleet-1", "state": "starting"}), Reply(json={}))
    with client_for(fault_server) as client:
        machine = client.machines.get("fleet-1", "m-1")
        machine.wait("stopped", 60)
    assert fault_server.last.target == "/v1/fleets/fleet-1/machines/m-1/wait?status=stopped&timeout=60"


def test_wait_for_running_reads_the_events_between_short_polls(fault_server):
    """Waiting for running looks at the events between long polls of 2 s: a failed start ends it at once."""
    answers = iter([Reply(json=[]), Reply(408, json=DEADLINE), Reply(json=[]), Reply(json={"ok": True})])
    fault_server.handler = lambda r: next(answers)
    with client_for(fault_server) as client:
        client.machines.wait("fleet-1", "m-1", "running", 90)
    assert [r.path.rsplit("/", 1)[1] for r in fault_server.requests] == ["events", "wait", "events", "wait"]
    assert [r.param("timeout") for r in fault_server.requests if r.path.endswith("/wait")] == ["2", "2"]


# -- the debug hook -----------------------------------------------------------------------------------------------
def test_debug_hook_sees_every_exchange_without_the_token(fault_server):
    fault_server.queue(Reply(503), Reply(json=[FLEET]), Reply(404, json={"detail": "no"}), Hang())
    seen = []
    with client_for(fault_server, debug_hook=seen.append, timeout=0.3, max_retries=1) as client:
        client.fleets.list()
        with pytest.raises(errors.NotFound):
            client.fleets.get("nope")
        with pytest.raises(errors.TimeoutError):
            client.fleets.create("f")
    assert [(e.method, e.status, e.attempt) for e in seen] == [
        ("GET", 503, 0), ("GET", 200, 1), ("GET", 404, 0), ("POST", None, 0)
    ]
    assert seen[0].url == f"{fault_server.url}/v1/fleets"
    assert seen[3].error
    assert all(e.elapsed_ms >= 0 for e in seen)
    assert seen[0].request_headers["authorization"] == "<redacted>"
    assert seen[0].request_headers["user-agent"].startswith("valyent-cli/")
    assert seen[1].response_headers["content-type"] == "application/json"
    for exchange in seen:
        assert TOKEN not in f"{exchange} {exchange!r}"
    assert "-> 503" in str(seen[0]) and "(attempt 2)" in str(seen[1])


def test_debug_hook_redacts_credentials_in_the_url(fault_server):
    fault_server.queue(Reply(json=[]))
    seen = []
    url = fault_server.url.replace("http://", f"http://user:{TOKEN}@")
    with client_for(fault_server, endpoint=url + "/v1", debug_hook=seen.append) as client:
        client.fleets.list()
    assert TOKEN not in repr(seen)
    assert fault_server.count() == 1


def test_debug_hook_redacts_a_set_cookie_answer_and_the_cookie_sent_back(fault_server):
    """Issue 28 item 12: a session cookie a server (or a proxy in front of it) sets is a credential too."""
    cookie = "session=s3cr3t-cookie-value; Path=/; HttpOnly"
    fault_server.queue(Reply(json=[], headers={"Set-Cookie": cookie}), Reply(json=[]))
    seen = []
    with client_for(fault_server, debug_hook=seen.append) as client:
        client.fleets.list()
        client.fleets.list()
    assert seen[0].response_headers["set-cookie"] == "<redacted>"
    assert seen[0].response_headers["content-type"] == "application/json"  # only the credentials go
    assert seen[1].request_headers.get("cookie", "<redacted>") == "<redacted>"
    assert "s3cr3t-cookie-value" not in repr(seen)


def test_concurrent_calls_share_one_client(fault_server):
    fault_server.handler = lambda r: Reply(json=[FLEET])
    with client_for(fault_server) as client:
        results = []
        threads = [threading.Thread(target=lambda: results.append(client.fleets.list())) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [[FLEET]] * 20
