"""Each client call's request as sent over real HTTP: method, path, query, body and headers."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading

import pytest
from support.faultserver import TOKEN, Reply, Stream, client_for, ndjson

from valyent_cli import __version__
from valyent_cli.api import Client, Fleet, Gateway, Machine, errors

NASTY = "a b/c?d&e#f%g"  # a name that breaks the path and the query unless each part is encoded
NASTY_ENCODED = "a%20b%2Fc%3Fd%26e%23f%25g"

MACHINE = {
    "id": "m-1",
    "namespace": "ns",
    "fleet": "fleet-1",
    "instance_id": "i-1",
    "machine_version": "v1",
    "region": "gra-1",
    "config": {"image": "nginx:latest", "guest": {"cpu_kind": "shared", "memory_mb": 512, "cpus": 1}},
    "created_at": "2024-01-01T00:00:00Z",
    "updated_at": "2024-01-01T00:00:00Z",
    "events": [],
    "state": "running",
}


@pytest.fixture
def server(fault_server):
    return fault_server


@pytest.fixture
def client(server):
    with client_for(server) as c:
        yield c


def test_headers_on_every_request(server, client):
    server.queue(Reply(json=[]))
    client.fleets.list()
    req = server.last
    assert req.method == "GET" and req.path == "/v1/fleets" and req.query == ""
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert req.headers["user-agent"] == f"valyent-cli/{__version__}"
    assert req.headers["accept"] == "application/json"


def test_fleets(server, client):
    fleet = {"id": "fleet-1", "name": "my-fleet", "namespace": "ns", "status": "active", "created_at": "x"}
    server.queue(Reply(json=[fleet]), Reply(201, json=fleet), Reply(json=fleet), Reply(json=fleet), Reply(204))
    assert client.fleets.list() == [fleet]
    created = client.fleets.create("my-fleet")
    assert isinstance(created, Fleet) and created.id == "fleet-1" and created.name == "my-fleet"
    client.fleets.create({"name": "my-fleet"})  # the seed's form
    client.fleets.get("my-fleet")
    client.fleets.delete("fleet-1")
    sent = [(r.method, r.path) for r in server.requests]
    assert sent == [
        ("GET", "/v1/fleets"),
        ("POST", "/v1/fleets"),
        ("POST", "/v1/fleets"),
        ("GET", "/v1/fleets/my-fleet"),
        ("DELETE", "/v1/fleets/fleet-1"),
    ]
    for r in server.requests[1:3]:
        assert r.json() == {"name": "my-fleet"}
        assert r.headers["content-type"] == "application/json"


def test_every_path_segment_is_encoded(server, client):
    server.queue(*[Reply(json=MACHINE) for _ in range(3)], Reply(204), Reply(json={"id": "g"}))
    client.fleets.get(NASTY)
    client.machines.get(NASTY, NASTY)
    client.machines.get("fleet", "..")
    client.machines.start(NASTY, "m 1")
    client.gateways.get(NASTY, "#gw")
    paths = [r.path for r in server.requests]
    assert paths == [
        f"/v1/fleets/{NASTY_ENCODED}",
        f"/v1/fleets/{NASTY_ENCODED}/machines/{NASTY_ENCODED}",
        "/v1/fleets/fleet/machines/%2E%2E",  # not normalised away into /v1/fleets/fleet
        f"/v1/fleets/{NASTY_ENCODED}/machines/m%201/start",
        f"/v1/fleets/{NASTY_ENCODED}/gateways/%23gw",
    ]
    assert server.requests[1].segments == ["v1", "fleets", NASTY, "machines", NASTY]


def test_an_empty_name_is_refused_before_any_request(server, client):
    with pytest.raises(ValueError):
        client.fleets.get("")
    with pytest.raises(ValueError):
        client.machines.get("fleet", "")
    assert server.requests == []


def test_namespace_on_every_request(server):
    client = client_for(server, namespace="team a&b")
    server.handler = lambda r: (
        Reply(json=[]) if r.method == "GET" and r.path.endswith(("/fleets", "/machines", "/events", "/gateways", "/ls"))
        else Stream([ndjson({"message": "x"})]) if r.path.endswith("/logs")
        else Reply(json=MACHINE) if r.method == "GET" and "/machines/" in r.path and not r.path.endswith("/wait")
        else Reply(json={"stdout": "", "stderr": "", "exit_code": 0}) if r.path.endswith("/exec")
        else Reply(json={"name": "x", "path": "/x", "is_dir": False, "size": 1, "mod_time": 0}) if r.path.endswith("/stat")
        else Reply(body=b"data") if r.path.endswith("/read")
        else Reply(json={"id": "x", "fleet_id": "f", "name": "web"})
    )
    calls = [
        lambda: client.fleets.list(),
        lambda: client.fleets.create("f"),
        lambda: client.fleets.get("f"),
        lambda: client.fleets.delete("f"),
        lambda: client.machines.create("f", {"region": "r", "config": {"image": "i", "guest": {}}}),
        lambda: client.machines.list("f", destroyed=True),
        lambda: client.machines.get("f", "m"),
        lambda: client.machines.start("f", "m"),
        lambda: client.machines.stop("f", "m"),
        lambda: client.machines.delete("f", "m"),
        lambda: client.machines.wait("f", "m", "stopped", 5),
        lambda: client.machines.events("f", "m"),
        lambda: client.machines.logs("f", "m"),
        lambda: next(iter(client.machines.follow_logs("f", "m"))),
        lambda: client.machines.exec("f", "m", ["true"]),
        lambda: client.machines.enable_gateway("f", "m"),
        lambda: client.machines.disable_gateway("f", "m"),
        lambda: client.gateways.create("f", {"name": "web", "target_port": 80}),
        lambda: client.gateways.list("f"),
        lambda: client.gateways.get("f", "g"),
        lambda: client.gateways.delete("f", "g"),
        lambda: client.fs("m").ls("/"),
        lambda: client.fs("m").mkdir("/d"),
        lambda: client.fs("m").read("/f"),
        lambda: client.fs("m").write("/f", b"x"),
        lambda: client.fs("m").rm("/f"),
        lambda: client.fs("m").stat("/f"),
        lambda: client.fs("m").exec(["true"]),
    ]
    for call in calls:
        call()
    assert len(server.requests) == len(calls)
    for r in server.requests:
        assert r.params["namespace"] == ["team a&b"], (r.method, r.target)
        assert "team%20a%26b" in r.query or "team+a%26b" in r.query
    client.close()


def test_no_namespace_param_when_unset(server, client):
    server.queue(Reply(json=[]))
    client.fleets.list()
    assert "namespace" not in server.last.params


def test_machine_create_body_has_no_null_fields(server, client):
    server.queue(Reply(201, json=MACHINE), Reply(201, json=MACHINE))
    payload = {
        "region": "gra-1",
        "config": {
            "image": "nginx:latest",
            "guest": {"cpu_kind": "shared", "memory_mb": 512, "cpus": 1},
            "workload": {"env": ["PORT=8080"], "restart": None, "init": {"cmd": None, "user": "root"}},
            "stop_config": None,
        },
        "skip_start": None,
        "enable_machine_gateway": False,
    }
    machine = client.machines.create("fleet-1", payload)
    assert isinstance(machine, Machine) and machine.id == "m-1" and machine.state == "running"
    req = server.last
    assert (req.method, req.path) == ("POST", "/v1/fleets/fleet-1/machines")
    assert req.json() == {
        "region": "gra-1",
        "config": {
            "image": "nginx:latest",
            "guest": {"cpu_kind": "shared", "memory_mb": 512, "cpus": 1},
            "workload": {"env": ["PORT=8080"], "init": {"user": "root"}},
        },
        "enable_machine_gateway": False,
    }
    assert b"null" not in req.body
    assert payload["skip_start"] is None and payload["config"]["stop_config"] is None  # the caller's dict untouched

    # auto_destroy where the seed README lists it goes on the wire inside workload, where the API reads it.
    seed_style = {"region": "gra-1", "config": {"image": "i", "guest": {"cpu_kind": "shared", "memory_mb": 1, "cpus": 1},
                                                "auto_destroy": True}}
    client.machines.create("fleet-1", seed_style)
    assert server.last.json()["config"] == {
        "image": "i", "guest": {"cpu_kind": "shared", "memory_mb": 1, "cpus": 1}, "workload": {"auto_destroy": True}
    }
    assert "auto_destroy" in seed_style["config"]


def test_machine_calls(server, client):
    server.handler = lambda r: Reply(json=[MACHINE] if r.path.endswith("/machines") else MACHINE) if r.method == "GET" else Reply(204)
    client.machines.list("fleet-1")
    client.machines.list("fleet-1", destroyed=True)
    machine = client.machines.get("fleet-1", "m-1")
    machine.start()
    machine.stop()
    machine.stop("SIGINT", 10)
    machine.stop({"timeout": 30, "signal": "SIGTERM"})  # the seed's form
    machine.delete()
    machine.delete(force=True)
    machine.enable_gateway()
    machine.disable_gateway()
    sent = [(r.method, r.path, r.query, r.body) for r in server.requests]
    base = "/v1/fleets/fleet-1/machines"
    assert sent == [
        ("GET", base, "", b""),
        ("GET", base, "destroyed=true", b""),
        ("GET", f"{base}/m-1", "", b""),
        ("POST", f"{base}/m-1/start", "", b""),
        ("POST", f"{base}/m-1/stop", "", b""),
        ("POST", f"{base}/m-1/stop", "", b'{"signal":"SIGINT","timeout":10}'),
        ("POST", f"{base}/m-1/stop", "", b'{"signal":"SIGTERM","timeout":30}'),
        ("DELETE", f"{base}/m-1", "force=false", b""),
        ("DELETE", f"{base}/m-1", "force=true", b""),
        ("POST", f"{base}/m-1/gateway/enable", "", b""),
        ("POST", f"{base}/m-1/gateway/disable", "", b""),
    ]


def test_bound_machine_falls_back_to_the_fleet_it_came_through(server, client):
    bare = {k: v for k, v in MACHINE.items() if k != "fleet"}
    server.queue(Reply(json=bare), Reply(204))
    machine = client.machines.get("my fleet", "m-1")
    machine.start()
    assert server.last.path == "/v1/fleets/my%20fleet/machines/m-1/start"
    assert "fleet" not in machine and json.loads(json.dumps(machine)) == bare


def test_wait_query(server, client):
    server.queue(Reply(200, json={"ok": True}), Reply(200))
    client.machines.wait("fleet-1", "m-1", "stopped", 12)
    req = server.requests[0]
    assert (req.method, req.path) == ("GET", "/v1/fleets/fleet-1/machines/m-1/wait")
    assert req.params == {"status": ["stopped"], "timeout": ["12"]}
    with pytest.raises(ValueError):
        client.machines.wait("fleet-1", "m-1", "starting", 10)  # not a state the API can wait for


def test_events_logs_and_follow(server, client):
    events = [{"id": "e1", "type": "machine.created", "status": "created", "timestamp": "2024-01-01T00:00:00Z"}]
    entries = [{"timestamp": 1700000000, "message": "hello"}, {"timestamp": 1700000001, "message": "world"}]
    server.queue(Reply(json=events), Stream([ndjson(*entries)]), Stream([ndjson(*entries)], end="stall"))
    assert client.machines.events("fleet-1", "m-1") == events
    assert client.machines.logs("fleet-1", "m-1") == entries
    follower = client.machines.follow_logs("fleet-1", "m-1", until_destroyed=False)
    got = []
    for entry in follower:
        got.append(entry)
        if len(got) == 2:
            break
    assert got == entries
    base = "/v1/fleets/fleet-1/machines/m-1"
    assert [(r.method, r.path, r.query) for r in server.requests] == [
        ("GET", f"{base}/events", ""),
        ("GET", f"{base}/logs", ""),
        ("GET", f"{base}/logs", "follow=true"),
    ]
    assert "application/x-ndjson" in server.requests[1].headers["accept"]
    assert server.requests[2].headers["accept"] == "application/x-ndjson"
    assert server.requests[2].headers["authorization"] == f"Bearer {TOKEN}"  # the TS SDK forgot it on the stream


def test_exec(server, client):
    result = {"stdout": "hi\n", "stderr": "", "exit_code": 0}
    server.queue(Reply(json=result), Reply(json=result))
    assert client.machines.exec("fleet-1", "m-1", ["echo", "hi"], timeout_ms=5000) == result
    client.machines.exec("fleet-1", "m-1", ["true"])
    assert server.requests[0].path == "/v1/fleets/fleet-1/machines/m-1/exec"
    assert server.requests[0].json() == {"cmd": ["echo", "hi"], "timeout_ms": 5000}
    assert server.requests[1].json() == {"cmd": ["true"], "timeout_ms": 30000}  # Ravel requires it: always sent


@pytest.mark.parametrize("exit_code", [True, False, "0", 1.0, None])
def test_an_exec_exit_code_that_is_not_an_integer_is_an_unexpected_answer(server, client, exit_code):
    """Issue 28 item 13: JSON true is not the integer an exit code must be (Python's bool is an int)."""
    server.queue(Reply(json={"stdout": "", "stderr": "", "exit_code": exit_code}))
    with pytest.raises(errors.ResponseError, match="unexpected answer from the server.*exit_code"):
        client.machines.exec("fleet-1", "m-1", ["true"])


def test_gateways(server, client):
    gw = {"id": "gw-1", "name": "web", "namespace": "ns", "fleet_id": "fleet-1", "protocol": "https", "target_port": 8080}
    server.queue(Reply(201, json=gw), Reply(201, json=gw), Reply(json=[gw]), Reply(json=gw), Reply(204), Reply(204))
    created = client.gateways.create("fleet-1", {"name": "web", "target_port": 8080})
    assert isinstance(created, Gateway) and created.target_port == 8080
    client.gateways.create("fleet-1", name="web", target_port=8080)
    assert client.gateways.list("fleet-1") == [gw]
    client.gateways.get("fleet-1", "gw-1").delete()
    client.gateways.delete("fleet-1", "gw-1")
    sent = [(r.method, r.path) for r in server.requests]
    base = "/v1/fleets/fleet-1/gateways"
    assert sent == [("POST", base), ("POST", base), ("GET", base), ("GET", f"{base}/gw-1"),
                    ("DELETE", f"{base}/gw-1"), ("DELETE", f"{base}/gw-1")]
    assert server.requests[0].json() == server.requests[1].json() == {"name": "web", "target_port": 8080}


FS_PATH = "/app/my dir/a&b#c?d.txt"


def test_fs_calls_on_the_initd_host(server, client):
    entry = {"name": "a&b#c?d.txt", "path": FS_PATH, "is_dir": False, "size": 3, "mod_time": 1700000000}
    server.queue(Reply(json=[entry]), Reply(204), Reply(json=entry), Reply(body=b"abc"), Reply(204),
                 Reply(json={"stdout": "", "stderr": "", "exit_code": 3}), Reply(json={"ok": True}))
    fs = client.fs("m 1/x")
    assert fs.ls(FS_PATH) == [entry]
    fs.mkdir("/app/data dir")
    assert fs.stat(FS_PATH) == entry
    assert fs.read(FS_PATH) == b"abc"
    fs.rm(FS_PATH)
    assert fs.exec(["false"], timeout_ms=100)["exit_code"] == 3
    assert fs.status() == {"ok": True}
    base = "/initd/m%201%2Fx"
    sent = [(r.method, r.path) for r in server.requests]
    assert sent == [("GET", f"{base}/fs/ls"), ("POST", f"{base}/fs/mkdir"), ("GET", f"{base}/fs/stat"),
                    ("GET", f"{base}/fs/read"), ("POST", f"{base}/fs/rm"), ("POST", f"{base}/exec"),
                    ("GET", f"{base}/status")]
    for i in (0, 2, 3, 4):
        req = server.requests[i]
        assert req.params == {"path": [FS_PATH]}
        for raw in " &#?":
            assert raw not in req.query  # each encoded, so the server sees one whole path
    assert server.requests[1].json() == {"dir": "/app/data dir"}
    assert server.requests[5].json() == {"cmd": ["false"], "timeout_ms": 100}
    for req in server.requests:
        assert req.headers["authorization"] == f"Bearer {TOKEN}"


def test_fs_write_multipart_fields(server, client):
    server.queue(Reply(204), Reply(204))
    client.fs("m-1").write(FS_PATH, b"hello \x00 world")
    client.fs("m-1").write("/etc/motd", "text, encoded as UTF-8: \u00e9")
    first, second = server.requests
    assert first.method == "POST" and first.path == "/initd/m-1/fs/write"
    assert first.headers["content-type"].startswith("multipart/form-data; boundary=")
    form = first.form()
    assert form["path"] == (None, FS_PATH.encode())
    assert form["file"] == ("a&b#c?d.txt", b"hello \x00 world")
    assert second.form()["file"][1] == "text, encoded as UTF-8: \u00e9".encode()


def test_fs_write_streams_a_file_object(server, client, tmp_path):
    data = os.urandom(6 * 1024 * 1024 + 7)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    server.queue(Reply(204))
    with open(source, "rb") as f:
        client.fs("m-1").write("/data/big.bin", f)
    form = server.last.form()
    assert form["path"] == (None, b"/data/big.bin")
    assert hashlib.sha256(form["file"][1]).hexdigest() == hashlib.sha256(data).hexdigest()


def test_fs_write_streams_a_pipe_like_stdin(server, client):
    """A source of unknown length (stdin) goes out in chunks (chunked transfer), every byte intact."""
    data = os.urandom(3 * 1024 * 1024)
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with open(write_fd, "wb") as w:
            for i in range(0, len(data), 100_000):
                w.write(data[i : i + 100_000])

    feeder = threading.Thread(target=feed)
    feeder.start()
    server.queue(Reply(204))
    with open(read_fd, "rb") as r:
        client.fs("m-1").write("/data/from-stdin", r)
    feeder.join()
    assert server.last.chunked
    assert server.last.form()["file"][1] == data


def test_fs_download_streams_to_a_file_object(server, client, tmp_path):
    data = os.urandom(5 * 1024 * 1024 + 3)
    server.queue(Reply(body=data, headers={"Content-Type": "application/octet-stream"}),
                 Stream([data[i : i + 65536] for i in range(0, len(data), 65536)], content_type="application/octet-stream"),
                 Reply(body=data))
    sink = io.BytesIO()
    assert client.fs("m-1").download("/data/big.bin", sink) == len(data)
    assert sink.getvalue() == data
    with open(tmp_path / "out.bin", "wb") as f:
        assert client.fs("m-1").download("/data/big.bin", f) == len(data)
    assert (tmp_path / "out.bin").read_bytes() == data
    assert client.fs("m-1").download_to("/data/big.bin", tmp_path / "atomic.bin") == len(data)
    assert (tmp_path / "atomic.bin").read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atomic.bin", "out.bin"]
    assert server.requests[0].params == {"path": ["/data/big.bin"]}


def test_responses_keep_unknown_keys(server, client):
    extended = {**MACHINE, "new_field": {"nested": [1, 2]}, "health": "healthy", "gateway_enabled": True}
    server.queue(Reply(json=extended), Reply(json=[extended]))
    machine = client.machines.get("fleet-1", "m-1")
    assert json.loads(json.dumps(machine)) == extended
    assert machine.new_field == {"nested": [1, 2]} and machine.health == "healthy"
    assert machine["new_field"] == {"nested": [1, 2]}
    assert machine.no_such_key is None
    listed = client.machines.list("fleet-1")
    assert json.dumps(listed) == json.dumps([extended])


def test_client_context_manager_and_token_required():
    with pytest.raises(ValueError):
        Client("")
    with Client(TOKEN, endpoint="http://127.0.0.1:1/v1/") as c:
        assert c.url("fleets") == "http://127.0.0.1:1/v1/fleets"
        assert TOKEN not in repr(c)


# -- encoding, for any name ---------------------------------------------------------------------------------------
from urllib.parse import parse_qs, unquote  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ENCODER = Client(TOKEN, endpoint="http://127.0.0.1:9/v1", namespace="ns")
NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(fleet=NAMES, machine=NAMES)
def test_any_name_stays_one_path_segment(fleet, machine):
    request = _ENCODER._http.build_request("GET", _ENCODER.url("fleets", fleet, "machines", machine, "wait"))
    raw = request.url.raw_path.decode("ascii")
    assert "?" not in raw and "#" not in raw
    segments = raw.split("/")
    assert len(segments) == 7, raw
    assert [unquote(segments[3]), unquote(segments[5])] == [fleet, machine]


@settings(max_examples=300, deadline=None)
@given(path=NAMES)
def test_any_fs_path_survives_the_query(path):
    request = _ENCODER._http.build_request("GET", _ENCODER.initd_url("m", "fs", "ls"), params=_ENCODER._params({"path": path}))
    query = request.url.query.decode("ascii")
    assert parse_qs(query, keep_blank_values=True) == {"path": [path], "namespace": ["ns"]}


def test_a_name_that_is_not_text_is_a_value_error():
    # A command-line argument with bytes that are not UTF-8 arrives as surrogate escapes.
    with pytest.raises(ValueError):
        _ENCODER.url("fleets", "caf\udce9")
