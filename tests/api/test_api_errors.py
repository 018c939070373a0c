"""Every error shape the field has seen, and every way the network fails, against real loopback servers."""

from __future__ import annotations

import time

import pytest
from support.env import dead_port
from support.faultserver import TOKEN, Close, FaultServer, Hang, Reply, Reset, Stream, client_for

from valyent_cli.api import errors
from valyent_cli.api.client import Client

PROBLEM = {
    "Code": "NOT_FOUND",
    "status": 404,
    "title": "Not Found",
    "detail": "machine not found",
    "errors": [{"message": "no such machine", "location": "path.machine", "value": "m-9"}],
}
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"


@pytest.fixture
def client(fault_server):
    # No retries here: this file is about what one failed exchange becomes.
    with client_for(fault_server, max_retries=0) as c:
        yield c


@pytest.mark.parametrize(
    "reply, cls, message, code, payload",
    [
        pytest.param(Reply(404, json=PROBLEM), errors.NotFound, "machine not found", "NOT_FOUND", PROBLEM, id="ravel-problem"),
        pytest.param(
            Reply(400, json={"Code": "INVALID_ARGUMENT", "title": "Bad Request", "errors": [{"message": "cpus must be >= 1"}]}),
            errors.BadRequest, "cpus must be >= 1", "INVALID_ARGUMENT", None, id="ravel-no-detail",
        ),
        pytest.param(Reply(402, json={"error": "Payment method required."}), errors.PaymentRequired,
                     "Payment method required.", None, {"error": "Payment method required."}, id="console-error"),
        pytest.param(Reply(401, json={"errors": [{"message": "Unauthorized access"}]}), errors.AuthError,
                     "Unauthorized access", None, {"errors": [{"message": "Unauthorized access"}]}, id="console-errors"),
        pytest.param(Reply(403, json={"error": "forbidden"}), errors.AuthError, "forbidden", None, None, id="403"),
        pytest.param(Reply(502, HTML_502, headers={"Content-Type": "text/html"}), errors.ServerError, "Bad Gateway",
                     None, HTML_502, id="html-502"),
        pytest.param(Reply(503), errors.ServerError, "Service Unavailable", None, None, id="empty-503"),
        pytest.param(Reply(500, "database is on fire\nline two", headers={"Content-Type": "text/plain"}),
                     errors.ServerError, "database is on fire", None, "database is on fire\nline two", id="plain-text"),
        pytest.param(Reply(409, json={"Code": "ALREADY_EXISTS", "detail": "fleet already exists"}), errors.Conflict,
                     "fleet already exists", "ALREADY_EXISTS", None, id="409"),
        pytest.param(Reply(408, json={"Code": "DEADLINE_EXCEEDED", "detail": "deadline exceeded"}),
                     errors.DeadlineExceeded, "deadline exceeded", "DEADLINE_EXCEEDED", None, id="408"),
        pytest.param(Reply(429, json={"Code": "RESOURCES_EXHAUSTED", "detail": "slow down"}, headers={"Retry-After": "7"}),
                     errors.RateLimited, "slow down", "RESOURCES_EXHAUSTED", None, id="429"),
        pytest.param(Reply(422, json={"message": "unprocessable"}), errors.BadRequest, "unprocessable", None, None, id="422"),
        pytest.param(Reply(501, json={"Code": "NOT_IMPLEMENTED", "detail": "no"}), errors.ServerError, "no",
                     "NOT_IMPLEMENTED", None, id="501"),
        pytest.param(Reply(418, json=["odd"]), errors.ApiError, "I'm a teapot", None, ["odd"], id="other-status"),
        pytest.param(Reply(404, '{"detail": "broken json', headers={"Content-Type": "application/json"}),
                     errors.NotFound, '{"detail": "broken json', None, '{"detail": "broken json', id="malformed-error-json"),
    ],
)
def test_error_bodies(fault_server, client, reply, cls, message, code, payload):
    fault_server.queue(reply)
    with pytest.raises(errors.ApiError) as info:
        client.fleets.get("f1")
    err = info.value
    assert type(err) is cls
    assert err.status == reply.status
    assert err.message == message == str(err)
    assert err.code == code
    if payload is not None:
        assert err.payload == payload
    assert err.method == "GET" and err.url.endswith("/v1/fleets/f1")
    assert TOKEN not in repr(err) + str(err) + repr(err.payload)
    if cls is errors.RateLimited:
        assert err.retry_after == 7.0


def test_empty_body_payload_is_none(fault_server, client):
    fault_server.queue(Reply(503))
    with pytest.raises(errors.ServerError) as info:
        client.fleets.list()
    assert info.value.payload is None and info.value.code is None


def test_fetch_error_with_payload_alias(fault_server, client):
    from valyent_cli.api import FetchErrorWithPayload

    fault_server.queue(Reply(400, json={"Code": "INVALID_ARGUMENT", "detail": "bad"}))
    with pytest.raises(FetchErrorWithPayload) as info:
        client.machines.create("f", {"region": "r", "config": {}})
    assert info.value.payload == {"Code": "INVALID_ARGUMENT", "detail": "bad"}


@pytest.mark.parametrize("body", [b"{not json", b"<html>oops</html>", b""])
def test_malformed_json_on_200_is_a_response_error(fault_server, client, body):
    fault_server.queue(Reply(200, body, headers={"Content-Type": "application/json"}))
    with pytest.raises(errors.ResponseError) as info:
        client.fleets.list() if body else client.fleets.get("f")
    assert not isinstance(info.value, errors.ApiError)


@pytest.mark.parametrize("answer", [{"id": "x"}, "a string", 42])
def test_wrong_shape_on_200_is_a_response_error(fault_server, client, answer):
    fault_server.queue(Reply(json=answer))
    with pytest.raises(errors.ResponseError):
        client.fleets.list()


def test_connection_refused_names_the_endpoint():
    port = dead_port()
    seen = []
    with client_for(f"http://127.0.0.1:{port}", max_retries=2, debug_hook=seen.append) as client:
        started = time.monotonic()
        with pytest.raises(errors.ConnectError) as info:
            client.fleets.list()
    assert time.monotonic() - started < 5  # milliseconds of backoff; the bound only allows for a loaded machine
    assert str(info.value) == f"cannot reach http://127.0.0.1:{port}: connection refused"
    assert info.value.url == f"http://127.0.0.1:{port}/v1/fleets"
    assert [e.attempt for e in seen] == [0, 1, 2]  # nothing reached the server: retried, then given up
    assert all(e.status is None and e.error for e in seen)


def test_dns_failure_is_a_connect_error():
    with client_for("http://no-such-host.invalid", max_retries=0) as client:
        with pytest.raises(errors.ConnectError) as info:
            client.fleets.list()
    assert "no-such-host.invalid" in str(info.value)
    assert "cannot resolve host" in str(info.value)


def test_a_server_that_never_answers_times_out(fault_server):
    fault_server.queue(Hang())
    with client_for(fault_server, timeout=0.5, max_retries=0) as client:
        started = time.monotonic()
        with pytest.raises(errors.TimeoutError) as info:
            client.fleets.list()
        elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 3.0
    assert fault_server.url in str(info.value) and "no answer" in str(info.value)


def test_timeouts_with_retries_stay_bounded(fault_server):
    fault_server.queue(Hang(), Hang(), Hang())
    with client_for(fault_server, timeout=0.3, max_retries=2) as client:
        started = time.monotonic()
        with pytest.raises(errors.TimeoutError):
            client.fleets.list()
        elapsed = time.monotonic() - started
    # the attempts share the call's budget (2 x timeout): a retry that would start past it is not made
    assert 1 <= fault_server.count() < 3
    assert elapsed < 2 * 0.3 + 2.5


def test_a_create_that_timed_out_is_not_sent_again(fault_server):
    fault_server.queue(Hang(), Reply(201, json={"id": "f"}))
    with client_for(fault_server, timeout=0.3, max_retries=3) as client:
        with pytest.raises(errors.TimeoutError):
            client.fleets.create("my-fleet")
    assert fault_server.count("POST") == 1


def test_reset_mid_response(fault_server, client):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
    fault_server.queue(Reset(head + b'[{"id": "fleet-1", "na'))
    with pytest.raises(errors.TransportError) as info:
        client.fleets.list()
    assert not isinstance(info.value, (errors.ConnectError, errors.TimeoutError))
    assert fault_server.url in str(info.value)


def test_truncated_body_with_content_length(fault_server, client):
    fault_server.queue(Reply(json=[{"id": "fleet-1", "name": "x" * 100}], truncate=20))
    with pytest.raises(errors.TransportError):
        client.fleets.list()


def test_reset_before_any_answer(fault_server, client):
    fault_server.queue(Reset())
    with pytest.raises(errors.TransportError):
        client.fleets.create("f")
    assert fault_server.count("POST") == 1


def test_closed_without_an_answer(fault_server, client):
    fault_server.queue(Close())
    with pytest.raises(errors.TransportError) as info:
        client.fleets.get("f")
    assert fault_server.url in str(info.value)


def test_a_stream_broken_mid_body_raises_our_error_not_httpx(fault_server, client, tmp_path):
    fault_server.queue(Stream([b'{"message": "one"}\n', b'{"message": "tw'], end="cut"))
    with pytest.raises(errors.TransportError):
        client.machines.logs("f", "m")
    data = b"x" * 300_000
    fault_server.queue(Reply(body=data, truncate=100_000, end="reset"))
    target = tmp_path / "file.bin"
    with pytest.raises(errors.TransportError):
        client.fs("m").download_to("/big", target)
    assert list(tmp_path.iterdir()) == []  # no partial file, under the target name or any other


def test_download_to_interrupted_leaves_the_old_file(fault_server, client, tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old content")
    fault_server.queue(Stream([b"new " * 40_000], end="stall"))  # more than one read chunk
    fs = client.fs("m")
    real_download = fs.download

    def download_then_ctrl_c(path, out):
        class Out:
            def write(self, chunk):  # a Ctrl-C right after the first chunk is written
                out.write(chunk)
                raise KeyboardInterrupt

        return real_download(path, Out())

    fs.download = download_then_ctrl_c  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        fs.download_to("/big", target)
    assert target.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_invalid_endpoints_are_connect_errors():
    with Client("t", endpoint="localhost:8421/v1", max_retries=0) as client:
        with pytest.raises(errors.ConnectError):
            client.fleets.list()
    with Client("t", endpoint="ftp://example.invalid/v1", max_retries=2) as client:
        with pytest.raises(errors.ConnectError) as info:
            client.fleets.list()
    assert "http://" in str(info.value)


def test_every_failure_is_a_valyent_error_and_never_shows_the_token(fault_server):
    """Each row of the fault matrix raises a ValyentError whose text holds no token."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"
    actions = [Reply(500), Reply(401, json={"errors": [{"message": "Unauthorized access"}]}), Reset(head + b"[{"),
               Close(), Hang(), Reply(200, b"{x", headers={"Content-Type": "application/json"})]
    for action in actions:
        fault_server.queue(action)
        with client_for(fault_server, timeout=0.3, max_retries=0) as client:
            with pytest.raises(errors.ValyentError) as info:
                client.fleets.list()
        text = f"{info.value!s} {info.value!r} {vars(info.value)!r}"
        assert TOKEN not in text


# -- Ctrl-C: the call stops at once, its connection is closed, nothing is left half-written ----------------------
@pytest.fixture
def ctrl_c_after():
    """Arm a SIGALRM that raises KeyboardInterrupt in the main thread, as Ctrl-C does."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    yield lambda seconds: signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def _closed_by_client(server, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.requests and all(r.closed_by_client for r in server.requests):
            return True
        time.sleep(0.01)
    return False


def test_ctrl_c_during_a_wait_closes_the_connection(fault_server, client, ctrl_c_after):
    fault_server.queue(Hang())
    ctrl_c_after(0.2)
    with pytest.raises(KeyboardInterrupt):
        client.machines.wait("f", "m", "running", 600)
    assert _closed_by_client(fault_server) and fault_server.count() == 1


def test_ctrl_c_during_a_follow_closes_the_connection(fault_server, client, ctrl_c_after):
    fault_server.queue(Stream([b'{"message": "a"}\n{"message": "b"}\n'], end="stall"))
    got = []
    with pytest.raises(KeyboardInterrupt):
        for entry in client.machines.follow_logs("f", "m", until_destroyed=False):
            got.append(entry["message"])
            if len(got) == 2:
                ctrl_c_after(0.1)
    assert got == ["a", "b"]
    assert _closed_by_client(fault_server) and fault_server.count() == 1


def test_ctrl_c_during_a_download_closes_the_connection_and_leaves_no_file(fault_server, client, ctrl_c_after, tmp_path):
    fault_server.queue(Stream([b"x" * 200_000], content_type="application/octet-stream", end="stall"))
    ctrl_c_after(0.3)
    with pytest.raises(KeyboardInterrupt):
        client.fs("m").download_to("/big", tmp_path / "big.bin")
    assert _closed_by_client(fault_server)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_a_call_is_never_retried(fault_server, ctrl_c_after):
    fault_server.queue(Hang(), Hang())
    fault_server.default = Reply(201, json={"id": "m"})  # what a retry would get: none must come
    with client_for(fault_server, max_retries=3) as client:
        ctrl_c_after(0.2)
        with pytest.raises(KeyboardInterrupt):
            client.machines.create("f", {"region": "gra-1", "config": {"image": "nginx"}})
        ctrl_c_after(0.2)
        with pytest.raises(KeyboardInterrupt):
            client.fleets.list()  # even a read: Ctrl-C means stop
    assert fault_server.count() == 2
    assert _closed_by_client(fault_server)
