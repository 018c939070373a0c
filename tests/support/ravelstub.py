"""A stand-in for a stock Ravel control plane, written from Ravel's Go source (github.com/valyentdev/ravel), not
from our contract: what `valyent` meets when it is pointed at a self-hosted Ravel.

    stub = RavelStub(bearer="Bearer s3cret", templates=("eco", "std"), follow_deadline=1.0)
    stub = RavelStub(cluster_state="noop")   # the Ravel of today (ravel/ravel.go: cluster.NewNoop()), see below
    stub.url                   # http://127.0.0.1:<port>, routes at the root
    stub.requests              # [(method, path, query dict, headers dict, body bytes)]
    stub.add_logs(machine_id, ["a", "b"], ts=1700000000)
    stub.close()

Each behaviour names the Ravel file it comes from (revision 7673519 of github.com/valyentdev/ravel; huma v2.27.0
for the request validation, see tests/support/ravelschema.py).

The cluster state (`cluster_state=`):
- "full" (the default): machine reads answered, as a cluster state that replicates machines would answer them.
  No revision of Ravel has one yet; it is what the CLI's own features are tested against.
- "noop": exactly `core/cluster/noop.go`, which `ravel/ravel.go` wires in: `GET .../machines/{id}` is a 500,
  the machine list and `GET /nodes` are `null`, and every call that reaches a node (create's placement answer,
  start, stop, exec, logs, wait, delete, gateway enable/disable) is a 500 too, since the orchestrator finds the
  node through the same no-op (`ravel/orchestrator/orchestrator.go: getAgentClient` -> `GetNode`). Events and
  versions read the database and work.
- "noop-reads": the no-op machine reads (500, `null`) with the nodes found: what `valyent` meets once the node
  lookup works (issue 23's model of "the Ravel of today"), to test that commands go on by full id. It runs on http.server in a thread (one thread per
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
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from support import ravelschema as schemas

# api/metadata.go
MAX_LABELS, MAX_ANNOTATIONS = 64, 32
MAX_LABEL_KEY, MAX_LABEL_VALUE, MAX_ANNOTATION_KEY, MAX_ANNOTATION_VALUE = 63, 255, 253, 65536
RESERVED_PREFIX = "ravel."
# runtime/logging/instance_logger.go: a node keeps the last 100 entries, dropping 20 at a time when full
LOG_MAX, LOG_TRUNCATE_BY = 100, 20
# internal/signals/signals.go: FromString, the signals a node accepts in a stop config
SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV",
           "SIGPIPE", "SIGALRM", "SIGTERM")
_KEY_CHARS = re.compile(r"^[A-Za-z0-9_./-]+$")


#: a JSON `null` body (Go's nil slice marshalled), as opposed to no body at all (huma's 204)
NULL = type("Null", (), {"__repr__": lambda self: "null"})()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def new_id() -> str:
    """internal/id/cuid2.go: a cuid2, 24 characters, lowercase, starting with a letter (machine and instance ids)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return random_secrets.choice(alphabet[:26]) + "".join(random_secrets.choice(alphabet) for _ in range(23))


def new_prefixed_id(prefix: str) -> str:
    """internal/id/cuid2.go: GeneratePrefixed, `fleet_...` (ravel/fleets.go) and `gw_...` (ravel/gateways.go)."""
    return f"{prefix}_{new_id()}"


class Problem(Exception):
    def __init__(self, status: int, body: dict[str, Any]):
        self.status = status
        self.body = body


#: api/errdefs/errors.go: getHTTPStatus
STATUS_OF_CODE = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "NOT_FOUND": 404, "ALREADY_EXISTS": 409,
                  "DEADLINE_EXCEEDED": 408, "NOT_IMPLEMENTED": 501, "RESOURCES_EXHAUSTED": 429}


def ravel_error(code: str, detail: str, *errors: dict[str, Any]) -> Problem:
    """api/errdefs/errors.go: RavelError {Code, status, title, detail, errors}; the status from the code
    (FAILED_PRECONDITION is 400), the title the code itself, `errors` left out when empty. huma writes a
    RavelError as it is (huma.go: a StatusError)."""
    status = STATUS_OF_CODE.get(code, 500)
    body: dict[str, Any] = {"Code": code, "status": status, "title": code, "detail": detail}
    if errors:
        body["errors"] = list(errors)
    return Problem(status, body)


def internal_error() -> Problem:
    """A plain Go error (not a RavelError) returned by a handler: huma calls NewError(500, ...), which Ravel's
    builder (internal/humautil/errors.go) answers with a fixed detail and no errors."""
    return Problem(500, {"Code": "INTERNAL", "status": 500, "title": "Internal Server Error",
                         "detail": "An uknown error occurred. Please try again later or check logs."})


def huma_error(status: int, detail: str, errors: list[dict[str, Any]]) -> Problem:
    """huma's own failures (422 validation, 400 "request body is required") through Ravel's error builder
    (internal/humautil/errors.go): Code from the status (400 INVALID_ARGUMENT, anything else but 429/500 UNKNOWN),
    title the HTTP status text."""
    from http import HTTPStatus

    code = {400: "INVALID_ARGUMENT", 429: "RESOURCES_EXHAUSTED"}.get(status, "UNKNOWN")
    body: dict[str, Any] = {"Code": code, "status": status, "title": HTTPStatus(status).phrase, "detail": detail}
    if errors:
        body["errors"] = [{k: v for k, v in e.items() if v not in (None, "")} for e in errors]
    return Problem(status, body)


def huma_422(location: str, message: str, value: Any = None) -> Problem:
    """huma v2's validation failure (e.g. ravel/server/endpoints/resolvers.go: `namespace` is `required:"true"`)."""
    return huma_error(422, "validation failed", [{"message": message, "location": location, "value": value}])


def check_body(schema: Any, body: Any) -> Any:
    """huma v2.27: the body checked against the Go type's schema (tests/support/ravelschema.py) before the handler."""
    if body is None:
        return None
    errors = schemas.validate(schema, body)
    if errors:
        raise huma_error(422, "validation failed", errors)
    return body


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
                 ssl_context: Any = None, cluster_state: str = "full") -> None:
        # ravel/server/auth.go: with no bearer_token configured there is no auth at all
        self.bearer = bearer
        # the vcpus templates of the server's config (the example config has eco and std)
        self.templates = templates
        # internal/streamutil/logs.go: SetWriteDeadline(now + 30 s) on every follow stream
        self.follow_deadline = follow_deadline
        self.healthy_after = healthy_after
        self.region = region
        if cluster_state not in ("full", "noop", "noop-reads"):
            raise ValueError(f"cluster_state: {cluster_state!r}")
        self.cluster_state = cluster_state
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str, dict[str, list[str]], dict[str, str], bytes]] = []
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, dict[str, Any]]] = {}
        self.fleets: dict[str, dict[str, Any]] = {}
        self.machines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.gateways: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, list[dict[str, Any]]] = {}
        self.builds: dict[str, dict[str, Any]] = {}
        #: how long a build takes on the node (seconds), its log growing meanwhile
        self.build_seconds = 1.0
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
    def add_logs(self, machine_id: str, messages: list[str], ts: int | None = None, source: str = "instance") -> None:
        """Append entries as a node writes them (runtime/logging/instance_logger.go): timestamp in Unix seconds,
        source always "instance" (the node does not tell stdout from stderr)."""
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

    def add_machine(self, fleet: str, *, state: str = "running") -> str:
        """A machine row as ravel/state/db/machines.go holds it (for no-op cluster-state tests, where create fails)."""
        with self.lock:
            fleet_row = next(f for f in self.fleets.values() if fleet in (f["id"], f["name"]))
            config = {"image": "nginx", "guest": {"cpu_kind": self.templates[0], "cpus": 1, "memory_mb": 512}}
            machine = self._new_machine(fleet_row["namespace"], fleet_row, config, self.region, None, False)
            machine["state"] = state
            return machine["id"]

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

    def machine(self, ns: str, fleet_ref: str, machine_id: str, show_destroyed: bool = False) -> dict[str, Any]:
        """ravel/machines.go getMachine -> ravel/state/db/machines.go GetMachine: the database row, destroyed ones
        only with showDestroyed (events and versions), so start, stop, exec, logs, wait, delete and the gateway
        of a destroyed machine are a 404."""
        fleet = self.fleet(ns, fleet_ref)
        machine = self.machines.get(machine_id)
        if machine is None or machine["fleet"] != fleet["id"] or machine["namespace"] != ns:
            raise ravel_error("NOT_FOUND", "machine not found")
        if machine["state"] == "destroyed" and not show_destroyed:
            raise ravel_error("NOT_FOUND", "machine not found")
        self._tick_health(machine)
        return machine

    def _node(self) -> None:
        """ravel/orchestrator/orchestrator.go getAgentClient: the node from the cluster state; the no-op's GetNode
        fails with a plain error (core/cluster/noop.go: ErrNoClusterState), which huma answers 500."""
        if self.cluster_state == "noop":
            raise internal_error()

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
            # ravel/nodes.go -> orchestrator ListNodes -> the cluster state: the no-op's is nil, `null`
            return 200, (NULL if self.cluster_state != "full" else self.nodes), {}
        if parts[:1] == ["namespaces"]:
            return self._namespaces(method, parts[1:], query, body)
        if parts[:1] == ["fleets"]:
            ns = self.namespace(query)
            return self._fleets(method, ns, parts[1:], query, body)
        if parts[:2] == ["health", "live"]:
            return 200, {"status": "ok"}, {}
        raise Problem(404, {"title": "Not Found", "status": 404, "detail": "Not Found"})

    def _namespaces(self, method: str, rest: list[str], query: dict[str, list[str]], body: Any):
        # ravel/server/endpoints/namespaces.go and secrets.go
        if not rest:
            if method == "POST":
                check_body(schemas.CREATE_NAMESPACE, body)
                name = (body or {}).get("name") or ""
                if name in self.namespaces:
                    raise ravel_error("ALREADY_EXISTS", "namespace already exists")
                self.namespaces[name] = {"name": name, "created_at": now_iso()}
                return 200, self.namespaces[name], {}
            # ravel/state/db/namespaces.go: ListNamespaces starts from `[]api.Namespace{}`: an empty list is `[]`
            return 200, list(self.namespaces.values()), {}
        if len(rest) > 1 and rest[1] == "secrets":
            return self._secrets(method, rest[2:], query, body)
        if len(rest) > 1 and rest[1] == "builds":
            return self._builds(method, rest[0], rest[2:], query, body)
        ns = rest[0]
        if ns not in self.namespaces:
            raise ravel_error("NOT_FOUND", "namespace not found")
        if len(rest) == 1:
            if method == "DELETE":
                del self.namespaces[ns]
                return 204, None, {}
            return 200, self.namespaces[ns], {}
        raise Problem(404, {"title": "Not Found", "status": 404, "detail": "Not Found"})

    def _secrets(self, method: str, rest: list[str], query: dict[str, list[str]], body: Any):
        """ravel/server/endpoints/secrets.go: the requests embed NSResolver (`namespace` from the query, required);
        the `{namespace}` segment of the path is not a field of any of them, so it is never read."""
        ns = self.namespace(query)
        store = self.secrets.setdefault(ns, {})

        def public(secret: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in secret.items() if k != "value"}  # api/secrets.go: Secret has no value

        if not rest:
            if method == "POST":
                check_body(schemas.CREATE_SECRET, body)
                name, value = body["name"], body["value"]
                if name in store:
                    raise internal_error()  # ravel/state/db/secrets.go: the unique violation is a plain error
                store[name] = {"id": new_id(), "name": name, "namespace": ns, "created_at": now_iso(),
                               "updated_at": now_iso(), "value": value}
                return 200, public(store[name]), {}
            return 200, [public(s) for s in store.values()], {}  # listSecrets: nil becomes []
        name = rest[0]
        if name not in store:
            raise ravel_error("NOT_FOUND", "secret not found")
        if method == "PATCH":
            check_body(schemas.UPDATE_SECRET, body)
            store[name].update(value=body["value"], updated_at=now_iso())
        elif method == "DELETE":
            del store[name]
            return 204, None, {}
        return 200, public(store[name]), {}

    def _builds(self, method: str, ns: str, rest: list[str], query: dict[str, list[str]], body: Any):
        """ravel/server/endpoints/builds.go (the namespace from the path here), ravel/builds.go, agent/build."""
        if not rest and method == "POST":
            # CreateBuildRequest: `image_name` and `registry` are `required:"true"` query parameters, the multipart
            # `context` file required; huma reports them together (422). There is no build-arg parameter.
            errors = [{"message": "required query parameter is missing", "location": f"query.{name}"}
                      for name in ("image_name", "registry") if not (query.get(name) or [""])[0]]
            if not isinstance(body, bytes) or b'name="context"' not in body:
                errors.append({"message": "required form file is missing", "location": "body.context"})
            if errors:
                raise huma_error(422, "validation failed", errors)
        if ns not in self.namespaces:  # ravel/builds.go: GetNamespace first
            raise ravel_error("NOT_FOUND", "namespace not found")
        if self.cluster_state == "noop":  # no nodes: "no available nodes for build", a plain error
            raise internal_error()
        if not rest:
            if method == "POST":
                image, registry = query["image_name"][0], query["registry"][0]
                tag = (query.get("tag") or [""])[0] or "latest"
                build = {"id": "build_" + new_id(), "namespace": ns, "image_name": image, "tag": tag,
                         "registry": registry, "full_image": f"{registry}/{image}:{tag}", "status": "pending",
                         "created_at": now_iso(), "_started": time.time(), "_log": []}
                self.builds[build["id"]] = build
                return 200, self._build(build), {}
            items = [self._build(b) for b in self.builds.values() if b["namespace"] == ns]
            return 200, items or NULL, {}  # ravel/builds.go ListBuilds: `var allBuilds []*api.Build`
        build = self.builds.get(rest[0])
        if len(rest) > 1 and rest[1] == "logs":
            if build is None:  # getBuildLogs: any error is huma.Error404NotFound("build logs not found")
                raise huma_error(404, "build logs not found", [])
            self._build(build)
            # internal/httpclient RawGet drops its options: `follow` never reaches the node, so the log so far
            return 200, ("text", "".join(line + "\n" for line in build["_log"])), {}
        if build is None:  # ravel/builds.go GetBuild and CancelBuild: fmt.Errorf("build not found"), a 500
            raise internal_error()
        if len(rest) > 1 and rest[1] == "cancel" and method == "POST":
            if self._build(build)["status"] not in ("completed", "failed"):
                build.update(status="failed", error="build canceled", _done=True)
            return 204, None, {}
        return 200, self._build(build), {}

    def _build(self, build: dict[str, Any]) -> dict[str, Any]:
        """The build as the node has it now: pending, building (its log growing), then completed."""
        if not build.get("_done"):
            elapsed = time.time() - build["_started"]
            steps = ["STEP 1/2: FROM busybox", "STEP 2/2: COPY . /app", f"COMMIT {build['full_image']}"]
            build["_log"] = steps[:min(3, 1 + int(3 * elapsed / max(self.build_seconds, 1e-6)))]
            if elapsed >= self.build_seconds:
                build.update(status="completed", digest="sha256:" + "0" * 64, completed_at=now_iso(),
                             duration_ms=int(self.build_seconds * 1000), _done=True)
            else:
                build["status"] = "building"
        return {k: v for k, v in build.items() if not k.startswith("_")}

    def _fleets(self, method: str, ns: str, rest: list[str], query: dict[str, list[str]], body: Any):
        # ravel/server/endpoints/fleets.go
        if not rest:
            if method == "POST":
                check_body(schemas.CREATE_FLEET, body)
                if ns not in self.namespaces:  # ravel/state/db/fleets.go: the fleets_namespace_fkey violation
                    raise ravel_error("NOT_FOUND", "namespace not found")
                metadata = (body or {}).get("metadata")
                validate_metadata(metadata)
                name = (body or {}).get("name", "")
                if any(f["name"] == name and f["namespace"] == ns and f["status"] == "active"
                       for f in self.fleets.values()):
                    raise ravel_error("ALREADY_EXISTS", "fleet name already exists in namespace")
                fleet = {"id": new_prefixed_id("fleet"), "namespace": ns, "name": name, "created_at": now_iso(),
                         "status": "active"}
                if metadata:
                    fleet["metadata"] = metadata
                self.fleets[fleet["id"]] = fleet
                return 200, fleet, {}  # createFleet answers 200
            # ListFleetsRequest declares `Labels map[string]string query:"labels"`, but Ravel's huma (v2.27.0,
            # go.mod) has no parser for a map in the query: `labels=...` makes the handler panic (the connection
            # is dropped) and `labels[K]=V` is not its name, so it is ignored: no server-side filter at all.
            if "labels" in query:
                raise ConnectionAbortedError("huma v2.27: unsupported param type map[string]string")
            # ravel/state/db/fleets.go: ListFleets starts from `[]api.Fleet{}`
            items = [f for f in self.fleets.values() if f["namespace"] == ns and f["status"] == "active"]
            return 200, items, {}
        fleet = self.fleet(ns, rest[0])
        if len(rest) == 1:
            if method == "DELETE":
                fleet["status"] = "destroyed"
                return 204, None, {}
            return 200, fleet, {}
        if rest[1] == "metadata" and method == "PATCH":
            check_body(schemas.UPDATE_METADATA, body)
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
        # ravel/server/endpoints/gateways.go, ravel/gateways.go
        if not rest:
            if method == "POST":
                check_body(schemas.CREATE_GATEWAY, body)
                # api/gateways.go: name optional (`omitempty`); ravel/gateways.go generateGatewayName: the fleet's
                # name, a dash and four characters
                name = (body or {}).get("name") or f"{fleet['name']}-{random_secrets.token_hex(2)}"
                gateway = {"id": new_prefixed_id("gw"), "name": name, "namespace": ns, "fleet_id": fleet["id"],
                           "protocol": "https", "target_port": body["target_port"]}
                self.gateways[gateway["id"]] = gateway
                return 200, gateway, {}
            # ravel/state/db/gateways.go: listGateways starts from `[]api.Gateway{}`
            return 200, [g for g in self.gateways.values() if g["fleet_id"] == fleet["id"]], {}
        # ravel/state/gateways.go GetGateway: an id (`gw_` prefix) by id; anything else by name, whose query in
        # ravel/state/db/gateways.go is malformed (`... AND fleet = $2 name = $3`): a syntax error, a 500
        if not rest[0].startswith("gw_"):
            raise internal_error()
        for gateway in self.gateways.values():
            if gateway["fleet_id"] == fleet["id"] and rest[0] == gateway["id"]:
                if method == "DELETE":
                    del self.gateways[gateway["id"]]
                    return 204, None, {}
                return 200, gateway, {}
        raise ravel_error("NOT_FOUND", "gateway not found")

    def _machines(self, method: str, ns: str, fleet: dict[str, Any], rest: list[str], query, body: Any):
        # ravel/server/endpoints/machines.go, ravel/machines.go
        noop_reads = self.cluster_state != "full"
        if not rest:
            if method == "POST":
                check_body(schemas.CREATE_MACHINE, body)
                return self._create_machine(ns, fleet, body or {})
            if noop_reads:  # core/cluster/noop.go: ListAPIMachines returns nil
                return 200, NULL, {}
            show_destroyed = (query.get("destroyed") or ["false"])[0] == "true"
            items = [m for m in self.machines.values() if m["fleet"] == fleet["id"]
                     and (show_destroyed or m["state"] != "destroyed")]
            for m in items:
                self._tick_health(m)
            return 200, [self._public(m) for m in items] or NULL, {}
        action = rest[1] if len(rest) > 1 else None
        if action is None and method == "GET":
            if noop_reads:  # ravel/state/machines.go GetAPIMachine -> the no-op: ErrNoClusterState, a plain error
                self.fleet(ns, fleet["id"])
                raise internal_error()
            machine = self.machines.get(rest[0])
            if machine is None or machine["fleet"] != fleet["id"]:
                raise ravel_error("NOT_FOUND", "machine not found")
            self._tick_health(machine)
            return 200, self._public(machine), {}
        machine = self.machine(ns, fleet["id"], rest[0], show_destroyed=action in ("versions", "events"))
        if action is None:  # DELETE
            # agent/machinerunner/destroy.go and state/fsm.go canDestroy: stopped, or running with force; else
            # agent/machinerunner/state/state.go: FAILED_PRECONDITION "machine is in S status" (400)
            self._node()
            force = (query.get("force") or ["false"])[0] == "true"
            if not (machine["state"] == "stopped" or (machine["state"] == "running" and force)):
                raise ravel_error("FAILED_PRECONDITION", f"machine is in {machine['state']} status")
            machine["state"] = "destroyed"
            self._event(machine, "machine.destroyed", "destroyed")
            return 204, None, {}
        if action == "versions":
            return 200, self.versions[machine["id"]], {}
        if action == "events":
            # ravel/state/db/machines.go ListMachineEvents: `SELECT ... WHERE machine_id = $1`, no ORDER BY, so
            # any order is Ravel's; newest first here, the order that shows a client trusting it
            return 200, list(reversed(machine["events"])), {}
        if action == "metadata" and method == "PATCH":
            check_body(schemas.UPDATE_METADATA, body)
            metadata = (body or {}).get("metadata") or {}
            validate_metadata(metadata)
            machine["metadata"] = metadata
            if noop_reads:  # ravel/machines.go UpdateMachineMetadata: written, then read back through the no-op
                raise internal_error()
            return 200, self._public(machine), {}
        if action == "wait":
            return self._wait(machine, query)
        if action == "start":
            self._node()
            if machine["state"] in ("stopped", "created"):
                machine.update(state="running", _started=time.time())
                self._event(machine, "machine.started", "running")
            return 204, None, {}
        if action == "stop":
            return self._stop(machine, body)
        if action == "exec":
            if body is None:  # `Body *api.ExecOptions` optional, then dereferenced: a panic, the connection dropped
                raise ConnectionAbortedError("nil pointer dereference")
            check_body(schemas.EXEC, body)
            self._node()
            if machine["state"] != "running":  # agent/machinerunner/instance_operations.go: errMachineIs
                raise ravel_error("FAILED_PRECONDITION", f"machine is in {machine['state']} status")
            return self._exec(body)
        if action == "logs":
            self._node()
            return 200, ("logs", machine["id"], (query.get("follow") or ["false"])[0] == "true"), {}
        if action == "gateway":
            self._node()
            machine["gateway_enabled"] = rest[2] == "enable"
            return 204, None, {}
        raise Problem(404, {"title": "Not Found", "status": 404, "detail": "Not Found"})

    def _wait(self, machine: dict[str, Any], query: dict[str, list[str]]):
        """ravel/server/endpoints/machines.go waitMachineStatus: `status` required (422), `timeout` 1-60 (huma's
        minimum/maximum: 422; absent, 0: the handler's 400); ravel/machines.go validateWaitStatus; the node's wait."""
        status = (query.get("status") or [""])[0]
        if not status:
            raise huma_422("query.status", "required query parameter is missing")
        raw = (query.get("timeout") or [""])[0]
        if raw:
            if not raw.isdigit():
                raise huma_422("query.timeout", "invalid integer", raw)
            if not 1 <= int(raw) <= 60:
                raise huma_422("query.timeout", f"expected number {'>= 1' if int(raw) < 1 else '<= 60'}", int(raw))
        else:
            raise ravel_error("INVALID_ARGUMENT", "timeout must be between 1 and 60 seconds")
        if status not in ("running", "stopped", "destroyed"):
            raise ravel_error("INVALID_ARGUMENT", "Invalid status")
        self._node()
        if machine["state"] == status:
            return 204, None, {}
        raise ravel_error("DEADLINE_EXCEEDED", "timeout")

    def _stop(self, machine: dict[str, Any], body: Any):
        """The stop body is optional (`Body *api.StopConfig`); agent/machinerunner/instance_operations.go Stop: a
        stopped machine is done; any other state but running refuses (FAILED_PRECONDITION), which the orchestrator
        masks (ravel/orchestrator/machines.go: NewUnknown "Failed to stop machine", a 500). The signal is checked
        when the node stops the instance, after the answer (core/validation/instance.go, internal/signals): a
        wrong one leaves the machine running with a `machine.stop_failed` event."""
        check_body(schemas.STOP_CONFIG, body)
        self._node()
        if machine["state"] == "stopped":
            return 204, None, {}
        if machine["state"] not in ("running", "starting"):
            raise ravel_error("UNKNOWN", "Failed to stop machine")
        signal = (body or {}).get("signal")
        timeout = (body or {}).get("timeout")
        self._event(machine, "machine.stop", "stopping")
        if (signal is not None and signal not in SIGNALS) or (timeout is not None and not 0 <= timeout <= 30):
            self._event(machine, "machine.stop_failed", "running")
            return 204, None, {}
        machine["state"] = "stopped"
        self._event(machine, "machine.exited", "stopped")
        return 204, None, {}

    def _event(self, machine: dict[str, Any], kind: str, status: str) -> None:
        """agent/machinerunner/state: an event as the node pushes it, stored by ravel/events.go."""
        stamp = datetime.now(timezone.utc)
        if machine["events"]:  # one after the other, a microsecond apart at least, as the node's clock makes them
            last = datetime.fromisoformat(machine["events"][-1]["timestamp"].replace("Z", "+00:00"))
            stamp = max(stamp, last + timedelta(microseconds=1))
        machine["events"].append({"id": new_id(), "machine_id": machine["id"], "instance_id": machine["instance_id"],
                                  "status": status, "type": kind, "origin": "ravel", "payload": {},
                                  "timestamp": stamp.isoformat().replace("+00:00", "Z")})

    def _new_machine(self, ns: str, fleet: dict[str, Any], config: dict[str, Any], region: Any, metadata: Any,
                     gateway: bool) -> dict[str, Any]:
        workload = config.setdefault("workload", {})
        # ravel/machines.go: resolveSecrets puts each referenced secret in the env; an unknown one is refused
        resolved_env = list(workload.get("env") or [])
        for ref in workload.get("secrets") or []:
            secret = self.secrets.get(ns, {}).get(ref.get("name"))
            if secret is None:
                raise ravel_error("INVALID_ARGUMENT", "Secret not found: " + str(ref.get("name")))
            resolved_env.append(f"{ref.get('env_var')}={secret['value']}")
        machine_id = new_id()
        machine = {
            "id": machine_id, "namespace": ns, "fleet": fleet["id"], "instance_id": new_id(),
            "machine_version": new_id(), "region": region, "config": config,
            "created_at": now_iso(), "updated_at": now_iso(), "events": [], "state": "created",
            "gateway_enabled": bool(gateway), "_started": time.time(),
        }
        if metadata:
            machine["metadata"] = metadata
        self.machines[machine_id] = machine
        version_config = json.loads(json.dumps(config))
        version_config["workload"]["env"] = resolved_env  # the version keeps the config with resolved secrets
        self.versions[machine_id] = [{"id": machine["machine_version"], "machine_id": machine_id, "namespace": ns,
                                      "config": version_config, "resources": {"cpus_mhz": 2500, "memory_mb": 512}}]
        self.logs[machine_id] = []
        return machine

    def _create_machine(self, ns: str, fleet: dict[str, Any], body: dict[str, Any]):
        validate_metadata(body.get("metadata"))
        config = json.loads(json.dumps(body.get("config") or {}))
        # ravel/machines.go: the vcpus template named by cpu_kind
        if ((config.get("guest") or {}).get("cpu_kind")) not in self.templates:
            raise ravel_error("INVALID_ARGUMENT", "Invalid CPU kind")
        # ravel/orchestrator/create_machine.go PrepareAllocation: no node in the region
        if body.get("region") != self.region:
            raise ravel_error("RESOURCES_EXHAUSTED", "failed to place machine")
        machine = self._new_machine(ns, fleet, config, body.get("region"), body.get("metadata"),
                                    bool(body.get("enable_machine_gateway")))
        # ravel/orchestrator/create_machine.go PutMachine: the row is written (State.CreateMachine), then the node
        # is looked up through the cluster state: the no-op fails it, a 500 with the machine left in the database
        self._node()
        self._event(machine, "machine.created", "created")
        if not body.get("skip_start"):
            self._event(machine, "machine.start", "starting")
            self._event(machine, "machine.started", "running")
            machine["state"] = "running"
        if workload_check(config):
            machine["health"] = "starting"
        # ravel/machines.go: the create answer is built from the payload's config; status "created"; 200
        answer = {k: v for k, v in machine.items() if not k.startswith("_")}
        answer["config"] = body.get("config")
        answer["state"] = "created"
        answer["events"] = None
        answer.pop("metadata", None)
        answer.pop("health", None)
        return 200, answer, {}

    @staticmethod
    def _public(machine: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in machine.items() if not k.startswith("_")}

    @staticmethod
    def _exec(body: dict[str, Any]):
        """ravel/server/endpoints/machines.go: machineExec returns *api.ExecResult as huma's output struct, which
        has no Body: huma answers 204 and sends the fields as headers named after them (huma.go findHeaders and
        writeHeader: empty strings left out, ints always written; Go's net/http turns newlines into spaces).
        initd/exec/processes.go: an empty cmd or one that cannot start is INVALID_ARGUMENT (400); a command killed
        at timeout_ms has no exit status: ExitCode() is -1. runtime/instances.go InstanceExec copies Stdout and
        ExitCode only: stderr never comes back."""
        cmd = body["cmd"]
        if not cmd:
            raise ravel_error("INVALID_ARGUMENT", "cmd cannot be empty")
        timeout = body["timeout_ms"] / 1000
        if timeout <= 0:
            raise ravel_error("INVALID_ARGUMENT", "context deadline exceeded")
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            out, code = done.stdout, done.returncode
            if code < 0:  # killed by a signal: Go's ProcessState.ExitCode() is -1
                code = -1
        except subprocess.TimeoutExpired as exc:
            raw = exc.stdout or b""
            out, code = raw.decode() if isinstance(raw, bytes) else raw, -1
        except (FileNotFoundError, PermissionError):
            raise ravel_error("INVALID_ARGUMENT", f'exec: "{cmd[0]}": executable file not found in $PATH') from None
        headers = {"Exitcode": str(code)}
        if out:
            headers["Stdout"] = out.replace("\r", " ").replace("\n", " ")
        return 204, None, headers


def workload_check(config: dict[str, Any]) -> bool:
    return bool((config.get("workload") or {}).get("health_check"))


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
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw  # a multipart upload (builds)
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
        if isinstance(data, tuple) and data[:1] == ("text",):  # a build's log (builds.go: text/plain)
            self._send(200, data[1].encode(), "text/plain")
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
