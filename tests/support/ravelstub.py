"""A stand-in for a stock Ravel control plane, written from Ravel's Go source (github.com/valyentdev/ravel), not
from our contract: what `valyent` meets when it is pointed at a self-hosted Ravel.

    stub = RavelStub(bearer="Bearer s3cret", templates=("eco", "std"), follow_deadline=1.0)
    stub.url                   # http://127.0.0.1:<port>, routes at the root
    stub.requests              # [(method, path, query dict, headers dict, body bytes)]
    stub.add_logs(machine_id, ["a", "b"], ts=1700000000)
    stub.close()

Each behaviour names the Ravel file it comes from. It runs on http.server in a thread (one thread per
connection) and speaks HTTP/1.1 with chunked streams, so that a follow stream can be cut the way Ravel's write
deadline cuts it: the connection closes without the last chunk.
"""

from __future__ import annotations

import json
import re
import secrets as random_secrets
import shlex
import subprocess
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

# api/metadata.go
MAX_LABELS, MAX_ANNOTATIONS = 64, 32
MAX_LABEL_KEY, MAX_LABEL_VALUE, MAX_ANNOTATION_KEY, MAX_ANNOTATION_VALUE = 63, 255, 253, 65536
RESERVED_PREFIX = "ravel."
# runtime/logging/instance_logger.go: a node keeps the last 100 entries, dropping 20 at a time when full
LOG_MAX, LOG_TRUNCATE_BY = 100, 20
# api/secrets.go: CreateSecretPayload.Name
SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_KEY_CHARS = re.compile(r"^[A-Za-z0-9_./-]+$")


#: a JSON `null` body (Go's nil slice marshalled), as opposed to no body at all (huma's 204)
NULL = type("Null", (), {"__repr__": lambda self: "null"})()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def new_id() -> str:
    return random_secrets.token_hex(10)


class Problem(Exception):
    def __init__(self, status: int, body: dict[str, Any]):
        self.status = status
        self.body = body


def ravel_error(code: str, detail: str, *errors: dict[str, Any]) -> Problem:
    """api/errdefs/errors.go: RavelError {Code, status, title, detail, errors}; status from the code."""
    status = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "FAILED_PRECONDITION": 412,
              "DEADLINE_EXCEEDED": 408}.get(code, 500)
    body: dict[str, Any] = {"Code": code, "status": status, "title": code, "detail": detail}
    if errors:
        body["errors"] = list(errors)
    return Problem(status, body)


def huma_422(location: str, message: str, value: Any = None) -> Problem:
    """huma v2's own validation failure (ravel/server/endpoints/resolvers.go: `namespace` is `required:"true"`)."""
    detail: dict[str, Any] = {"message": message, "location": location}
    if value is not None:
        detail["value"] = value
    return Problem(422, {"title": "Unprocessable Entity", "status": 422, "detail": "validation failed",
                         "errors": [detail]})


def validate_metadata(metadata: Any) -> None:
    """ravel/validation.go: ValidateMetadata."""
    if not metadata:
        return
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    if len(labels) > MAX_LABELS:
        raise ravel_error("INVALID_ARGUMENT", f"too many labels: maximum {MAX_LABELS} allowed, got {len(labels)}")
    for key, value in labels.items():
        if not key or len(key) > MAX_LABEL_KEY or key.startswith(RESERVED_PREFIX) or not _KEY_CHARS.match(key):
            raise ravel_error("INVALID_ARGUMENT", "invalid label key", {"location": "metadata.labels", "value": key})
        if len(value) > MAX_LABEL_VALUE:
            raise ravel_error("INVALID_ARGUMENT", "label value exceeds maximum length")
    if len(annotations) > MAX_ANNOTATIONS:
        raise ravel_error("INVALID_ARGUMENT", "too many annotations")
    for key, value in annotations.items():
        if not key or len(key) > MAX_ANNOTATION_KEY or key.startswith(RESERVED_PREFIX) or not _KEY_CHARS.match(key):
            raise ravel_error("INVALID_ARGUMENT", "invalid annotation key")
        if len(value) > MAX_ANNOTATION_VALUE:
            raise ravel_error("INVALID_ARGUMENT", "annotation value exceeds maximum length")


class RavelStub:
    def __init__(self, *, bearer: str | None = None, templates: tuple[str, ...] = ("eco", "std"),
                 follow_deadline: float = 30.0, healthy_after: float = 0.3, region: str = "fr",
                 ssl_context: Any = None) -> None:
        # ravel/server/auth.go: with no bearer_token configured there is no auth at all
        self.bearer = bearer
        # the vcpus templates of the server's config (the example config has eco and std)
        self.templates = templates
        # internal/streamutil/logs.go: SetWriteDeadline(now + 30 s) on every follow stream
        self.follow_deadline = follow_deadline
        self.healthy_after = healthy_after
        self.region = region
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str, dict[str, list[str]], dict[str, str], bytes]] = []
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, dict[str, Any]]] = {}
        self.fleets: dict[str, dict[str, Any]] = {}
        self.machines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.gateways: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, list[dict[str, Any]]] = {}
        self.log_cond = threading.Condition(self.lock)
        self.nodes = [{"id": "node-1", "address": "10.0.0.1", "agent_port": 8080, "region": region,
                       "heartbeated_at": now_iso()}]
        stub = self

        class Handler(_Handler):
            server_stub = stub

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if ssl_context is not None:
            # ravel/server/server.go: `server.api.tls`, with client certificates required when a CA is configured
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True,
                                                         do_handshake_on_connect=False)
            self.url = f"https://localhost:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- test helpers -------------------------------------------------------------------------------------------
    def add_logs(self, machine_id: str, messages: list[str], ts: int | None = None, source: str = "stdout") -> None:
        """Append entries as a node writes them (runtime/logging/instance_logger.go): timestamp in Unix seconds."""
        with self.log_cond:
            log = self.logs.setdefault(machine_id, [])
            instance = self.machines[machine_id]["instance_id"]
            for message in messages:
                entry = {"timestamp": int(time.time()) if ts is None else ts, "instance_id": instance,
                         "source": source, "level": "info", "message": message}
                if len(log) >= LOG_MAX:
                    del log[:LOG_TRUNCATE_BY]
                log.append(entry)
                self.log_cond.notify_all()
            self.logs[machine_id] = log

    def bodies(self, method: str, path_re: str) -> list[Any]:
        return [json.loads(b) if b else None for m, p, _q, _h, b in self.requests
                if m == method and re.fullmatch(path_re, p)]

    # -- the API ------------------------------------------------------------------------------------------------
    def namespace(self, query: dict[str, list[str]]) -> str:
        """ravel/server/endpoints/resolvers.go: NSResolver, `namespace` query parameter required."""
        ns = (query.get("namespace") or [""])[0]
        if not ns:
            raise huma_422("query.namespace", "required query parameter is missing")
        return ns

    def fleet(self, ns: str, ref: str) -> dict[str, Any]:
        """ravel/state/db/fleets.go: a fleet by id or name, active ones only."""
        for fleet in self.fleets.values():
            if fleet["namespace"] == ns and fleet["status"] == "active" and ref in (fleet["id"], fleet["name"]):
                return fleet
        raise ravel_error("NOT_FOUND", "fleet not found")

    def machine(self, ns: str, fleet_ref: str, machine_id: str) -> dict[str, Any]:
        fleet = self.fleet(ns, fleet_ref)
        machine = self.machines.get(machine_id)
        if machine is None or machine["fleet"] != fleet["id"]:
            raise ravel_error("NOT_FOUND", "machine not found")
        self._tick_health(machine)
        return machine

    def _tick_health(self, machine: dict[str, Any]) -> None:
        check = (machine["config"].get("workload") or {}).get("health_check")
        if check and machine["state"] == "running":
            machine["health"] = "healthy" if time.time() - machine["_started"] >= self.healthy_after else "starting"

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any, dict[str, str]]:
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        with self.lock:
            return self._route(method, parts, query, body)

    def _route(self, method: str, parts: list[str], query: dict[str, list[str]], body: Any):
        # ravel/server/endpoints/endpoints.go: the routes, at the server root
        if parts == ["nodes"] and method == "GET":
            return 200, self.nodes, {}
        if parts[:1] == ["namespaces"]:
            return self._namespaces(method, parts[1:], body)
        if parts[:1] == ["fleets"]:
            ns = self.namespace(query)
            return self._fleets(method, ns, parts[1:], query, body)
        if parts[:2] == ["health", "live"]:
            return 200, {"status": "ok"}, {}
        raise Problem(404, {"title": "Not Found", "status": 404, "detail": "Not Found"})

    def _namespaces(self, method: str, rest: list[str], body: Any):
        # ravel/server/endpoints/namespaces.go and secrets.go
        if not rest:
            if method == "POST":
                name = (body or {}).get("name") or ""
                if name in self.namespaces:
                    raise ravel_error("ALREADY_EXISTS", "namespace already exists")
                self.namespaces[name] = {"name": name, "created_at": now_iso()}
                return 200, self.namespaces[name], {}
            # ListNamespacesResponse has no nil check: an empty list is `null`
            return 200, list(self.namespaces.values()) or NULL, {}
        ns = rest[0]
        if ns not in self.namespaces:
            raise ravel_error("NOT_FOUND", "namespace not found")
        if len(rest) == 1:
            if method == "DELETE":
                del self.namespaces[ns]
                return 204, None, {}
            return 200, self.namespaces[ns], {}
        if rest[1] != "secrets":
            raise Problem(404, {"title": "Not Found", "status": 404, "detail": "Not Found"})
        store = self.secrets.setdefault(ns, {})

        def public(secret: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in secret.items() if k != "value"}  # api/secrets.go: Secret has no value

        if len(rest) == 2:
            if method == "POST":
                name, value = (body or {}).get("name", ""), (body or {}).get("value", "")
                if not SECRET_NAME.match(name) or len(name) > 63:
                    raise huma_422("body.name", "expected string to match pattern", name)
                if not value:
                    raise huma_422("body.value", "expected length >= 1")
                if name in store:
                    raise ravel_error("ALREADY_EXISTS", "secret already exists")
                store[name] = {"id": new_id(), "name": name, "namespace": ns, "created_at": now_iso(),
                               "updated_at": now_iso(), "value": value}
                return 200, public(store[name]), {}
            return 200, [public(s) for s in store.values()], {}  # listSecrets: nil becomes []
        name = rest[2]
        if name not in store:
            raise ravel_error("NOT_FOUND", "secret not found")
        if method == "PATCH":
            if not (body or {}).get("value"):
                raise huma_422("body.value", "expected length >= 1")
            store[name].update(value=body["value"], updated_at=now_iso())
        elif method == "DELETE":
            del store[name]
            return 204, None, {}
        return 200, public(store[name]), {}

    def _fleets(self, method: str, ns: str, rest: list[str], query: dict[str, list[str]], body: Any):
        # ravel/server/endpoints/fleets.go
        if not rest:
            if method == "POST":
                if ns not in self.namespaces:  # ravel/state/db/fleets.go: the fleets_namespace_fkey violation
                    raise ravel_error("NOT_FOUND", "namespace not found")
                metadata = (body or {}).get("metadata")
                validate_metadata(metadata)
                name = (body or {}).get("name", "")
                if any(f["name"] == name and f["namespace"] == ns and f["status"] == "active"
                       for f in self.fleets.values()):
                    raise ravel_error("ALREADY_EXISTS", "fleet name already exists in namespace")
                fleet = {"id": new_id(), "namespace": ns, "name": name, "created_at": now_iso(), "status": "active"}
                if metadata:
                    fleet["metadata"] = metadata
                self.fleets[fleet["id"]] = fleet
                return 200, fleet, {}  # createFleet answers 200
            # ListFleetsRequest declares `Labels map[string]string query:"labels"`, but Ravel's huma (v2.27.0,
            # go.mod) has no parser for a map in the query: `labels=...` makes the handler panic (the connection
            # is dropped) and `labels[K]=V` is not its name, so it is ignored: no server-side filter at all.
            if "labels" in query:
                raise ConnectionAbortedError("huma v2.27: unsupported param type map[string]string")
            items = [f for f in self.fleets.values() if f["namespace"] == ns and f["status"] == "active"]
            return 200, items, {}
        fleet = self.fleet(ns, rest[0])
        if len(rest) == 1:
            if method == "DELETE":
                fleet["status"] = "destroyed"
                return 204, None, {}
            return 200, fleet, {}
        if rest[1] == "metadata" and method == "PATCH":
            metadata = (body or {}).get("metadata") or {}
            validate_metadata(metadata)
            fleet["metadata"] = metadata
            return 200, fleet, {}
        if rest[1] == "gateways":
            return self._gateways(method, ns, fleet, rest[2:], body)
        if rest[1] == "machines":
            return self._machines(method, ns, fleet, rest[2:], query, body)
        raise Problem(404, {"title": "Not Found", "status": 404, "detail": "Not Found"})

    def _gateways(self, method: str, ns: str, fleet: dict[str, Any], rest: list[str], body: Any):
        # ravel/server/endpoints/gateways.go; api/gateways.go: name optional (`omitempty`), generated when absent
        if not rest:
            if method == "POST":
                name = (body or {}).get("name") or f"gw-{random_secrets.token_hex(4)}"
                gateway = {"id": new_id(), "name": name, "namespace": ns, "fleet_id": fleet["id"], "protocol": "https",
                           "target_port": (body or {}).get("target_port")}
                self.gateways[gateway["id"]] = gateway
                return 200, gateway, {}
            return 200, [g for g in self.gateways.values() if g["fleet_id"] == fleet["id"]] or NULL, {}
        for gateway in self.gateways.values():
            if gateway["fleet_id"] == fleet["id"] and rest[0] in (gateway["id"], gateway["name"]):
                if method == "DELETE":
                    del self.gateways[gateway["id"]]
                    return 204, None, {}
                return 200, gateway, {}
        raise ravel_error("NOT_FOUND", "gateway not found")

    def _machines(self, method: str, ns: str, fleet: dict[str, Any], rest: list[str], query, body: Any):
        # ravel/server/endpoints/machines.go, ravel/machines.go
        if not rest:
            if method == "POST":
                return self._create_machine(ns, fleet, body or {})
            show_destroyed = (query.get("destroyed") or ["false"])[0] == "true"
            items = [m for m in self.machines.values() if m["fleet"] == fleet["id"]
                     and (show_destroyed or m["state"] != "destroyed")]
            for m in items:
                self._tick_health(m)
            return 200, [self._public(m) for m in items] or NULL, {}
        machine = self.machine(ns, fleet["id"], rest[0])
        action = rest[1] if len(rest) > 1 else None
        if action is None:
            if method == "DELETE":
                machine["state"] = "destroyed"
                return 204, None, {}
            return 200, self._public(machine), {}
        if action == "versions":
            return 200, self.versions[machine["id"]], {}
        if action == "events":
            return 200, machine["events"], {}
        if action == "metadata" and method == "PATCH":
            metadata = (body or {}).get("metadata") or {}
            validate_metadata(metadata)
            machine["metadata"] = metadata
            return 200, self._public(machine), {}
        if action == "wait":
            status = (query.get("status") or [""])[0]
            if machine["state"] == status:
                return 200, None, {}
            raise ravel_error("DEADLINE_EXCEEDED", "timeout")
        if action in ("start", "stop"):
            machine["state"] = "running" if action == "start" else "stopped"
            return 200, None, {}
        if action == "exec":
            return self._exec(body or {})
        if action == "logs":
            return 200, ("logs", machine["id"], (query.get("follow") or ["false"])[0] == "true"), {}
        if action == "gateway":
            machine["gateway_enabled"] = rest[2] == "enable"
            return 200, None, {}
        raise Problem(404, {"title": "Not Found", "status": 404, "detail": "Not Found"})

    def _create_machine(self, ns: str, fleet: dict[str, Any], body: dict[str, Any]):
        validate_metadata(body.get("metadata"))
        config = json.loads(json.dumps(body.get("config") or {}))
        workload = config.setdefault("workload", {})
        # ravel/machines.go: resolveSecrets puts each referenced secret in the env; an unknown one is refused
        resolved_env = list(workload.get("env") or [])
        for ref in workload.get("secrets") or []:
            secret = self.secrets.get(ns, {}).get(ref.get("name"))
            if secret is None:
                raise ravel_error("INVALID_ARGUMENT", "Secret not found: " + str(ref.get("name")))
            resolved_env.append(f"{ref.get('env_var')}={secret['value']}")
        # ravel/machines.go: the vcpus template named by cpu_kind
        if ((config.get("guest") or {}).get("cpu_kind")) not in self.templates:
            raise ravel_error("INVALID_ARGUMENT", "Invalid CPU kind")
        if body.get("region") != self.region:
            raise ravel_error("RESOURCES_EXHAUSTED", "no node available in region")
        machine_id = new_id()
        machine = {
            "id": machine_id, "namespace": ns, "fleet": fleet["id"], "instance_id": new_id(),
            "machine_version": new_id(), "region": body.get("region"), "config": config,
            "created_at": now_iso(), "updated_at": now_iso(), "events": [], "state": "running",
            "gateway_enabled": bool(body.get("enable_machine_gateway")), "_started": time.time(),
        }
        if body.get("metadata"):
            machine["metadata"] = body["metadata"]
        if workload.get("health_check"):
            machine["health"] = "starting"
        for kind, status in (("machine.created", "created"), ("machine.start", "starting"),
                             ("machine.started", "running")):
            machine["events"].append({"id": new_id(), "machine_id": machine_id, "instance_id": machine["instance_id"],
                                      "status": status, "type": kind, "origin": "ravel", "payload": {},
                                      "timestamp": now_iso()})
        self.machines[machine_id] = machine
        version_config = json.loads(json.dumps(config))
        version_config["workload"]["env"] = resolved_env  # the version keeps the config with resolved secrets
        self.versions[machine_id] = [{"id": machine["machine_version"], "machine_id": machine_id, "namespace": ns,
                                      "config": version_config, "resources": {"cpus_mhz": 2500, "memory_mb": 512}}]
        self.logs[machine_id] = []
        # ravel/machines.go: the create answer is built from the payload's config; status "created"; 200
        answer = {k: v for k, v in machine.items() if not k.startswith("_")}
        answer["state"] = "created"
        answer["events"] = None
        return 200, answer, {}

    @staticmethod
    def _public(machine: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in machine.items() if not k.startswith("_")}

    @staticmethod
    def _exec(body: dict[str, Any]):
        """ravel/server/endpoints/machines.go: machineExec returns *api.ExecResult as huma's output struct, which
        has no Body: huma answers 204 and sends the fields as headers named after them (huma.go findHeaders and
        writeHeader: empty strings left out, ints always written; Go's net/http turns newlines into spaces)."""
        cmd = body.get("cmd") or []
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=(body.get("timeout_ms") or 10000) / 1000)
            out, err, code = done.stdout, done.stderr, done.returncode
        except FileNotFoundError:
            out, err, code = "", f"exec: {shlex.join(cmd)}: not found", 127
        headers = {"Exitcode": str(code)}
        if out:
            headers["Stdout"] = out.replace("\r", " ").replace("\n", " ")
        if err:
            headers["Stderr"] = err.replace("\r", " ").replace("\n", " ")
        return 204, None, headers


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_stub: RavelStub

    def log_message(self, *args: Any) -> None:
        pass

    def handle(self) -> None:
        import ssl

        try:
            if isinstance(self.request, ssl.SSLSocket):
                self.request.do_handshake()  # in this connection's thread: a refused client ends only its own
            super().handle()
        except OSError:
            pass

    def _any(self) -> None:
        stub = self.server_stub
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        with stub.lock:
            stub.requests.append((self.command, parts.path, query, headers, raw))
        # ravel/server/auth.go: the whole header compared with bearer_token; a refusal is 401 "Unauthorized"
        if stub.bearer is not None and self.headers.get("Authorization") != stub.bearer:
            self._send(401, b"Unauthorized", "text/plain; charset=utf-8")
            return
        try:
            body = json.loads(raw) if raw else None
            status, data, extra = stub.handle(self.command, parts.path, query, body)
        except ConnectionAbortedError:  # a panic in a Go handler: net/http drops the connection
            self.close_connection = True
            return
        except Problem as problem:
            self._send(problem.status, json.dumps(problem.body).encode(), "application/problem+json")
            return
        if isinstance(data, tuple) and data[:1] == ("logs",):
            self._logs(data[1], data[2])
            return
        if status == 204 or data is None:
            # huma: an output struct without a Body (or a nil one) is answered 204, its fields as headers
            self._send(204, b"", None, extra)
            return
        self._send(status, b"null" if data is NULL else json.dumps(data).encode(), "application/json", extra)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _any

    def _send(self, status: int, body: bytes, content_type: str | None, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        if status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 204:
            self.wfile.write(body)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _logs(self, machine_id: str, follow: bool) -> None:
        stub = self.server_stub
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with stub.lock:
            history = [dict(e) for e in stub.logs.get(machine_id, [])]
        if not follow:
            # ravel/server/endpoints/machines.go relays the node's answer line by line: the node sends one JSON
            # array (`null` when empty), so the body is a single line
            self._chunk((json.dumps(history) if history else "null").encode() + b"\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        # internal/streamutil/logs.go: the history as NDJSON, `null` at the end of the replay, then live lines,
        # all under a write deadline; when it passes the connection is closed mid-stream (no last chunk)
        deadline = time.monotonic() + stub.follow_deadline
        try:
            for entry in history:
                self._chunk(json.dumps(entry).encode() + b"\n")
            self._chunk(b"null\n")
            with stub.log_cond:
                sent = len(stub.logs.get(machine_id, []))
                last = stub.logs[machine_id][-1] if stub.logs.get(machine_id) else None
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                with stub.log_cond:
                    log = stub.logs.get(machine_id, [])
                    # the subscription sees every new entry, whatever the ring buffer dropped meanwhile
                    at = next((i for i in range(len(log) - 1, -1, -1) if log[i] is last), None)
                    if at is not None:
                        start = at + 1
                    else:
                        start = sent if last is None else 0
                    fresh = log[start:]
                    if not fresh:
                        stub.log_cond.wait(min(remaining, 0.2))
                        continue
                    last = fresh[-1]
                    sent = len(log)
                for entry in fresh:
                    self._chunk(json.dumps(entry).encode() + b"\n")
        except OSError:
            return
        self.close_connection = True
