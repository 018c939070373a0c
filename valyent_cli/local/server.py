"""The sandbox's HTTP surface: the control plane under /v1, each machine's initd under /initd/{machine_id}.

`create_app(data_dir, token)` returns a Starlette app whose lifespan opens the store, reconciles machines left by
a previous server, and on shutdown stops every machine. Shapes, paths and codes follow api-contract.md.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import sys
from json.encoder import encode_basestring_ascii as _json_str
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from valyent_cli.local import fs
from valyent_cli.local.problems import (
    Problem,
    check_create_machine,
    check_exec,
    check_metadata,
    check_name,
    check_secret_payload,
    check_stop_config,
    invalid,
    not_found,
    precondition,
)
from valyent_cli.local.store import Store
from valyent_cli.local.supervisor import ShuttingDown, Supervisor

WAIT_STATES = ("running", "stopped", "destroyed")
OWN_NAMESPACE = "default"  # what a request without ?namespace= uses; `local start` writes it into the profile
LOG_BATCH = 5000
#: log entries read, encoded and written at once when serving history (~3 MB a write at 160 bytes a line)
LOG_HISTORY_BATCH = 20000


class AuthMiddleware:
    """Every request but /healthz needs `Authorization: Bearer <token>`; else the console's 401 body."""

    def __init__(self, app, token: str):
        self.app = app
        self.expected = token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] != "/healthz":
            scheme, given = b"", b""
            for key, value in scope["headers"]:
                if key == b"authorization":
                    scheme, _, given = value.strip().partition(b" ")
                    break
            if scheme.lower() != b"bearer" or not secrets.compare_digest(given.strip(), self.expected):
                response = JSONResponse(
                    {"errors": [{"message": "Unauthorized access"}]}, 401, headers={"WWW-Authenticate": "Bearer"}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- helpers -------------------------------------------------------------------------------------------------
def _sup(request: Request) -> Supervisor:
    return request.app.state.supervisor


def _store(request: Request) -> Store:
    return request.app.state.store


def _ns(request: Request) -> str:
    return request.query_params.get("namespace") or OWN_NAMESPACE


def _labels(request: Request) -> dict[str, str]:
    """The `labels` filter: `labels[K]=V` (huma's deepObject map), or `labels=K=V,K2=V2`."""
    wanted = {}
    for key, value in request.query_params.multi_items():
        if key.startswith("labels[") and key.endswith("]"):
            wanted[key[7:-1]] = value
        elif key == "labels":
            for item in filter(None, value.split(",")):
                k, _, v = item.partition("=")
                wanted[k] = v
    return wanted


#: the largest JSON body the API accepts (an upload, `fs write`, streams and has no such limit)
MAX_BODY = 1024 * 1024


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _read_body(request: Request) -> bytes:
    """The body, refused with 413 once it is larger than MAX_BODY (before it is read, when its length says so)."""
    too_large = Problem("INVALID_ARGUMENT", f"the request body is larger than {MAX_BODY // 1024} KiB", status=413)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _json_body(request: Request, *, optional: bool = False) -> Any:
    raw = await _read_body(request)
    if not raw.strip():
        if optional:
            return {}
        raise invalid("a JSON body is required", "body")
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError):
        raise invalid("the request body is not valid JSON", "body") from None
    except RecursionError:
        raise invalid("the request body is nested too deeply", "body") from None
    # What cannot be stored or sent back as UTF-8 (a lone surrogate, from a \ud800 escape) is refused here,
    # before anything is written: stored, it would break every answer that includes it.
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise invalid("the request body holds a lone surrogate (an unpaired \\ud800-\\udfff escape), "
                      "which is not text and cannot be stored", "body") from None
    except RecursionError:
        raise invalid("the request body is nested too deeply", "body") from None
    return body


def _fleet(request: Request) -> dict:
    ref = request.path_params["fleet"]
    fleet = _store(request).get_fleet(_ns(request), ref)
    if fleet is None:
        raise not_found("fleet")
    return fleet


def _machine_row(request: Request) -> sqlite3.Row:
    fleet = _fleet(request)
    row = _store(request).machine_row(request.path_params["machine"])
    if row is None or row["fleet_id"] != fleet["id"]:
        raise not_found("machine")
    return row


def _machine(request: Request, machine_id: str) -> dict:
    return _store(request).get_machine(machine_id)


def _flag(request: Request, name: str) -> bool:
    return (request.query_params.get(name) or "").lower() in ("1", "true", "yes")


# -- health --------------------------------------------------------------------------------------------------
async def healthz(request: Request) -> Response:
    sup = getattr(request.app.state, "supervisor", None)
    body: dict[str, Any] = {"ok": True}
    if sup is not None:
        body["driver"] = sup.driver.name
        body["isolation"] = sup.isolation
        if sup.isolation == "none":
            body["isolation_problem"] = sup.isolation_problem
    return JSONResponse(body)


# -- fleets --------------------------------------------------------------------------------------------------
async def list_fleets(request: Request) -> Response:
    return JSONResponse(_store(request).list_fleets(_ns(request), _labels(request)))


async def create_fleet(request: Request) -> Response:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise invalid("the body must be an object", "body")
    name = check_name(body.get("name"), "fleet")
    metadata = check_metadata(body.get("metadata"))
    store = _store(request)
    store.ensure_namespace(_ns(request))  # created on first use (Ravel answers 404 for an unknown namespace)
    try:
        fleet = store.create_fleet(_ns(request), name)
    except sqlite3.IntegrityError:
        raise Problem("ALREADY_EXISTS", f"fleet {name!r} already exists") from None
    if metadata:
        store.set_fleet_metadata(fleet["id"], metadata)
        fleet = store.get_fleet(_ns(request), fleet["id"])
    return JSONResponse(fleet, 201)


async def update_fleet_metadata(request: Request) -> Response:
    fleet = _fleet(request)
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise invalid("the body must be an object", "body")
    metadata = check_metadata(body.get("metadata") or {}, "body.metadata")
    _store(request).set_fleet_metadata(fleet["id"], metadata)
    return JSONResponse(_store(request).get_fleet(_ns(request), fleet["id"]))


async def get_fleet(request: Request) -> Response:
    return JSONResponse(_fleet(request))


async def delete_fleet(request: Request) -> Response:
    fleet = _fleet(request)
    store = _store(request)
    live = store.count_live_machines(fleet["id"])
    if live:
        raise precondition(
            f"fleet {fleet['name']!r} still has {live} machine(s) that are not destroyed: destroy them first"
        )
    store.destroy_fleet(fleet["id"])
    await request.app.state.proxy.sync()
    return JSONResponse({**fleet, "status": "destroyed"})


# -- machines ------------------------------------------------------------------------------------------------
async def create_machine(request: Request) -> Response:
    fleet = _fleet(request)
    body = check_create_machine(await _json_body(request))
    store = _store(request)
    sup = _sup(request)
    config = body["config"]
    problem = sup.check_user(config)
    if problem:
        raise invalid(problem, "body.config.workload.init.user", (config.get("workload") or {})["init"]["user"])
    secret_env = {}
    for ref in (config.get("workload") or {}).get("secrets") or []:  # resolved now, as Ravel does
        value = store.secret_value(_ns(request), ref["name"])
        if value is None:
            raise invalid("Secret not found: " + ref["name"])
        secret_env[ref["env_var"]] = value
    guest = config["guest"]
    mid = store.insert_machine(namespace=_ns(request), fleet_id=fleet["id"], region=body["region"],
                               config=config, metadata=check_metadata(body.get("metadata")),
                               secret_env=secret_env, health=sup.initial_health(config),
                               resources={"cpus_mhz": guest["cpus"] * 1000, "memory_mb": guest["memory_mb"]})
    if body.get("enable_machine_gateway"):
        store.update_machine(mid, gateway_enabled=1)
    await _sup(request).create(mid, bool(body.get("skip_start")))
    notice = _sup(request).driver.create_notice(body["config"])
    # the CLI says it once on stderr; ASCII only, as a header must be
    headers = {"Valyent-Notice": notice.encode("ascii", "replace").decode()} if notice else None
    return JSONResponse(_machine(request, mid), 201, headers=headers)


async def list_machines(request: Request) -> Response:
    fleet = _fleet(request)
    store = _store(request)
    destroyed = _flag(request, "destroyed")
    labels = _labels(request)
    # Built as text from the stored JSON, in a worker thread: a big fleet never holds up the event loop.
    body = await asyncio.to_thread(lambda: store.list_machines_body(fleet["id"], destroyed, store.reader(), labels))
    return Response(body, media_type="application/json")


async def update_machine_metadata(request: Request) -> Response:
    mid = _machine_row(request)["id"]
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise invalid("the body must be an object", "body")
    _store(request).set_machine_metadata(mid, check_metadata(body.get("metadata") or {}, "body.metadata"))
    return JSONResponse(_machine(request, mid))


async def machine_versions(request: Request) -> Response:
    return JSONResponse(_store(request).list_versions(_machine_row(request)["id"]))


# -- namespaces, secrets, nodes --------------------------------------------------------------------------------
def _namespace_name(request: Request) -> str:
    name = request.path_params["namespace"]
    store = _store(request)
    if store.get_namespace(name) is None and not store.namespace_in_use(name):
        raise not_found("namespace")
    store.ensure_namespace(name)
    return name


async def list_namespaces(request: Request) -> Response:
    return JSONResponse(_store(request).list_namespaces())


async def create_namespace(request: Request) -> Response:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise invalid("the body must be an object", "body")
    name = check_name(body.get("name"), "namespace")
    try:
        return JSONResponse(_store(request).create_namespace(name))
    except sqlite3.IntegrityError:
        raise Problem("ALREADY_EXISTS", f"namespace {name!r} already exists") from None


async def get_namespace(request: Request) -> Response:
    return JSONResponse(_store(request).get_namespace(_namespace_name(request)))


async def delete_namespace(request: Request) -> Response:
    name = _namespace_name(request)
    store = _store(request)
    if name == OWN_NAMESPACE:
        raise precondition(f"namespace {name!r} is the sandbox's own")
    if store.namespace_in_use(name):
        raise precondition(f"namespace {name!r} still has fleets: delete them first")
    store.delete_namespace(name)
    return Response(status_code=204)


async def list_secrets(request: Request) -> Response:
    return JSONResponse(_store(request).list_secrets(_namespace_name(request)))


async def create_secret(request: Request) -> Response:
    ns = _namespace_name(request)
    name, value = check_secret_payload(await _json_body(request), create=True)
    try:
        return JSONResponse(_store(request).create_secret(ns, name, value))
    except sqlite3.IntegrityError:
        raise Problem("ALREADY_EXISTS", f"secret {name!r} already exists") from None


def _secret(request: Request) -> tuple[str, dict]:
    ns = _namespace_name(request)
    secret = _store(request).get_secret(ns, request.path_params["secret"])
    if secret is None:
        raise not_found("secret")
    return ns, secret


async def get_secret(request: Request) -> Response:
    return JSONResponse(_secret(request)[1])


async def update_secret(request: Request) -> Response:
    ns, secret = _secret(request)
    _, value = check_secret_payload(await _json_body(request), create=False)
    _store(request).update_secret(ns, secret["name"], value)
    return JSONResponse(_store(request).get_secret(ns, secret["name"]))


async def delete_secret(request: Request) -> Response:
    ns, secret = _secret(request)
    _store(request).delete_secret(ns, secret["name"])
    return Response(status_code=204)


async def list_nodes(request: Request) -> Response:
    import socket

    from valyent_cli.local.store import now_rfc3339

    return JSONResponse([{"id": "local", "address": request.url.hostname or "127.0.0.1",
                          "agent_port": request.url.port or 0, "region": "local",
                          "heartbeated_at": now_rfc3339(), "name": socket.gethostname()}])


async def get_machine(request: Request) -> Response:
    return JSONResponse(_machine(request, _machine_row(request)["id"]))


async def start_machine(request: Request) -> Response:
    mid = _machine_row(request)["id"]
    await _sup(request).start(mid)
    return JSONResponse(_machine(request, mid))


async def stop_machine(request: Request) -> Response:
    mid = _machine_row(request)["id"]
    override = check_stop_config(await _json_body(request, optional=True), "body")
    await _sup(request).stop(mid, override)
    return JSONResponse(_machine(request, mid))


async def delete_machine(request: Request) -> Response:
    mid = _machine_row(request)["id"]
    await _sup(request).destroy(mid, force=_flag(request, "force"))
    return JSONResponse(_machine(request, mid))


async def wait_machine(request: Request) -> Response:
    mid = _machine_row(request)["id"]
    status = request.query_params.get("status")
    if status not in WAIT_STATES:
        raise invalid(f"status must be one of {', '.join(WAIT_STATES)}", "query.status", status)
    raw = request.query_params.get("timeout", "60")
    try:
        timeout = int(raw)
    except ValueError:
        timeout = 0
    if not 1 <= timeout <= 60:
        raise invalid("timeout must be a whole number of seconds from 1 to 60", "query.timeout", raw)
    try:
        reached = await _sup(request).wait_for(mid, status, timeout)
    except ShuttingDown:
        raise Problem("INTERNAL", "the sandbox server is shutting down", status=503) from None
    if not reached:
        raise Problem("DEADLINE_EXCEEDED", f"machine did not reach status {status} within {timeout}s")
    return JSONResponse({"ok": True, "state": status})


async def machine_events(request: Request) -> Response:
    return JSONResponse(_store(request).list_events(_machine_row(request)["id"]))


def _log_lines(rows: list[tuple]) -> list[str]:
    return [
        f'{{"timestamp":{ts},"instance_id":"{iid}","source":"{src}","level":"{lvl}","message":{_json_str(msg)}}}'
        for _, ts, iid, src, lvl, msg in rows
    ]


async def machine_logs(request: Request) -> Response:
    mid = _machine_row(request)["id"]
    store = _store(request)
    sup = _sup(request)
    follow = _flag(request, "follow")
    ndjson = follow or "application/x-ndjson" in request.headers.get("accept", "")

    def read_text(after: int) -> tuple[int, int, bytes]:  # in a worker thread
        return store.read_log_text(mid, after, LOG_HISTORY_BATCH, store.reader())

    async def history_ndjson():
        after = 0
        while True:
            count, after, chunk = await asyncio.to_thread(read_text, after)
            if count:
                yield chunk
            if count < LOG_HISTORY_BATCH:
                break
        if not follow:
            return
        rt = sup.rt(mid)
        while True:
            woken = rt.log_event  # taken before reading: a line written after the read sets this event
            rows = store.read_logs(mid, after, LOG_BATCH)
            if rows:
                after = rows[-1][0]
                yield ("\n".join(_log_lines(rows)) + "\n").encode()
                continue
            row = store.machine_row(mid)
            if sup.shutting_down or row is None or row["state"] == "destroyed":
                return
            await woken.wait()

    async def history_array():
        after = 0
        first = True
        yield b"["
        while True:
            count, after, chunk = await asyncio.to_thread(read_text, after)
            if count:
                # one entry a line, and a line holds no raw newline (JSON escapes it): the commas go there
                yield (b"" if first else b",") + chunk[:-1].replace(b"\n", b",")
                first = False
            if count < LOG_HISTORY_BATCH:
                break
        yield b"]"

    if ndjson:
        return StreamingResponse(history_ndjson(), media_type="application/x-ndjson",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    return StreamingResponse(history_array(), media_type="application/json")


class _AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: an exec's output bytes that are not UTF-8 travel as lone
    surrogates ("\\udc80"), which the client writes back as the same bytes."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


async def exec_machine(request: Request) -> Response:
    mid = _machine_row(request)["id"]
    cmd, timeout_ms = check_exec(await _json_body(request))
    return _AsciiJSONResponse(await _sup(request).exec(mid, cmd, timeout_ms))


async def _set_gateway(request: Request, enabled: bool) -> Response:
    row = _machine_row(request)
    if row["state"] in ("destroying", "destroyed"):
        raise precondition(f"machine is {row['state']}")
    _store(request).update_machine(row["id"], gateway_enabled=int(enabled))
    return JSONResponse(_machine(request, row["id"]))


async def enable_gateway(request: Request) -> Response:
    return await _set_gateway(request, True)


async def disable_gateway(request: Request) -> Response:
    return await _set_gateway(request, False)


# -- gateways ------------------------------------------------------------------------------------------------
async def create_gateway(request: Request) -> Response:
    fleet = _fleet(request)
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise invalid("the body must be an object", "body")
    name = check_name(body.get("name"), "gateway")
    port = body.get("target_port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise invalid("target_port must be an integer from 1 to 65535", "body.target_port", port)
    try:
        gw = _store(request).create_gateway(_ns(request), fleet["id"], name, port)
    except sqlite3.IntegrityError:
        raise Problem("ALREADY_EXISTS", f"gateway {name!r} already exists in fleet {fleet['name']!r}") from None
    await request.app.state.proxy.open(gw["id"])
    return JSONResponse(_store(request).gateway_by_id(gw["id"]), 201)


async def list_gateways(request: Request) -> Response:
    return JSONResponse(_store(request).list_gateways(_fleet(request)["id"]))


def _gateway(request: Request) -> dict:
    gw = _store(request).get_gateway(_fleet(request)["id"], request.path_params["gateway"])
    if gw is None:
        raise not_found("gateway")
    return gw


async def get_gateway(request: Request) -> Response:
    return JSONResponse(_gateway(request))


async def delete_gateway(request: Request) -> Response:
    gw = _gateway(request)
    _store(request).delete_gateway(gw["id"])
    await request.app.state.proxy.close(gw["id"])
    return JSONResponse(gw)


# -- initd ---------------------------------------------------------------------------------------------------
def _initd_machine(request: Request) -> str:
    """The machine behind an initd URL. Its namespace is checked only when the request names one: the
    cloud's initd host is per machine and knows no namespace."""
    mid = request.path_params["machine_id"]
    row = _store(request).machine_row(mid)
    ns = request.query_params.get("namespace")
    if row is None or (ns and row["namespace"] != ns):
        raise not_found("machine")
    if row["state"] != "running":
        raise precondition(f"machine is not running (state: {row['state']}): its initd cannot be reached")
    return mid


async def _root(request: Request, mid: str) -> Path:
    return await _sup(request).fs_root(mid)


async def _fs_at(request: Request, mid: str, path: object, *, write: bool = False,
                 location: str = "query.path") -> tuple[Path, object, str]:
    """Where the fs API finds a machine path: (host directory, path inside it, its mount point). A path under a
    volume or a host system directory is served from it, so `fs` sees what the machine's processes see."""
    root = await _root(request, mid)
    if not isinstance(path, str) or not path:
        return root, path, "/"
    from valyent_cli.local import isolation

    sup = _sup(request)
    row = _store(request).machine_row(mid)
    base, rest, mount_point, read_only = isolation.view(root, await sup.fs_mounts(row, json.loads(row["config"])), path)
    if write and read_only:
        raise invalid(f"{path}: read-only file system (the host's {mount_point}, shared read-only)", location, path)
    return base, rest, mount_point


def _fix_entry(entry: dict, mount_point: str) -> dict:
    if mount_point != "/":
        entry["path"] = mount_point.rstrip("/") + entry["path"] if entry["path"] != "/" else mount_point
        entry["name"] = entry["path"].rsplit("/", 1)[-1]
    return entry


async def initd_status(request: Request) -> Response:
    _initd_machine(request)
    return JSONResponse({"ok": True})


async def initd_exec(request: Request) -> Response:
    mid = _initd_machine(request)
    cmd, timeout_ms = check_exec(await _json_body(request))
    return JSONResponse(await _sup(request).exec(mid, cmd, timeout_ms))


async def fs_ls(request: Request) -> Response:
    mid = _initd_machine(request)
    base, path, mp = await _fs_at(request, mid, request.query_params.get("path"))
    return JSONResponse([_fix_entry(e, mp) for e in fs.ls(base, path)])


async def fs_stat(request: Request) -> Response:
    mid = _initd_machine(request)
    base, path, mp = await _fs_at(request, mid, request.query_params.get("path"))
    return JSONResponse(_fix_entry(fs.stat(base, path), mp))


async def fs_mkdir(request: Request) -> Response:
    mid = _initd_machine(request)
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise invalid("the body must be an object", "body")
    base, path, _ = await _fs_at(request, mid, body.get("dir"), write=True, location="body.dir")
    fs.mkdir(base, path)
    return JSONResponse({"ok": True})


async def fs_rm(request: Request) -> Response:
    mid = _initd_machine(request)
    base, path, mp = await _fs_at(request, mid, request.query_params.get("path"), write=True)
    if mp != "/" and path == "/":
        raise invalid(f"{mp} is a mount point: it cannot be removed", "query.path", mp)
    await asyncio.to_thread(fs.rm, base, path)
    return JSONResponse({"ok": True})


async def fs_read(request: Request) -> Response:
    mid = _initd_machine(request)
    base, path, _ = await _fs_at(request, mid, request.query_params.get("path"))
    host, _ = fs.open_for_read(base, path)
    return FileResponse(host, media_type="application/octet-stream")


async def fs_write(request: Request) -> Response:
    mid = _initd_machine(request)
    root = await _root(request, mid)
    upload = fs.UploadParser(request.headers.get("content-type", ""), _sup(request).driver.upload_dir(mid, root))
    try:
        try:
            async for chunk in request.stream():
                upload.feed(chunk)
            upload.finish()
        except Problem:
            raise
        except Exception as exc:  # python-multipart's parse errors
            if type(exc).__module__.startswith("python_multipart"):
                raise invalid(f"invalid multipart body: {exc}", "body") from None
            raise
        raw = upload.fields.get("path")
        if raw is not None:
            base, path, _ = await _fs_at(request, mid, raw.decode("utf-8", errors="replace"), write=True,
                                         location="body.path")
            if isinstance(path, str):
                upload.fields["path"] = path.encode()
            root = base
        fs.commit_upload(root, upload)
    finally:
        upload.discard()
    return JSONResponse({"ok": True})


# -- errors --------------------------------------------------------------------------------------------------
async def _problem(request: Request, exc: Problem) -> Response:
    return JSONResponse(exc.body(), exc.status)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    code = "NOT_FOUND" if exc.status_code == 404 else "INVALID_ARGUMENT"
    detail = "no such route" if exc.status_code == 404 else str(exc.detail)
    return JSONResponse(Problem(code, detail, status=exc.status_code).body(), exc.status_code)


async def _internal(request: Request, exc: Exception) -> Response:
    from valyent_cli.local.store import is_disk_full

    if is_disk_full(exc):
        return JSONResponse(Problem("INTERNAL", "no space left on the disk that holds the sandbox's data: free some "
                                    "space (machine logs and files are the usual cause)", status=507).body(), 507)
    from valyent_cli.local.faults import problem_for

    problem = problem_for(exc, request.query_params.get("path"))  # a 400 when the path caused it; no host paths
    return JSONResponse(problem.body(), problem.status)


_PROBE = object()


def create_app(data_dir: Path, token: str, isolation_problem: str | None | object = _PROBE, driver: str = "process",
               engine: str | None = None) -> Starlette:
    """isolation_problem: what `isolation.probe()` said (None: machines get their own root); probed at start when
    not given (process driver only). `driver`: process, podman or docker (`drivers.choose` picks one); `engine`:
    the engine's executable."""
    data_dir = Path(data_dir)

    m = "/fleets/{fleet}/machines/{machine}"
    v1 = [
        Route("/fleets", list_fleets, methods=["GET"]),
        Route("/fleets", create_fleet, methods=["POST"]),
        Route("/fleets/{fleet}", get_fleet, methods=["GET"]),
        Route("/fleets/{fleet}", delete_fleet, methods=["DELETE"]),
        Route("/fleets/{fleet}/machines", list_machines, methods=["GET"]),
        Route("/fleets/{fleet}/machines", create_machine, methods=["POST"]),
        Route(m, get_machine, methods=["GET"]),
        Route(m, delete_machine, methods=["DELETE"]),
        Route(m + "/start", start_machine, methods=["POST"]),
        Route(m + "/stop", stop_machine, methods=["POST"]),
        Route(m + "/wait", wait_machine, methods=["GET"]),
        Route(m + "/events", machine_events, methods=["GET"]),
        Route(m + "/logs", machine_logs, methods=["GET"]),
        Route(m + "/exec", exec_machine, methods=["POST"]),
        Route(m + "/gateway/enable", enable_gateway, methods=["POST"]),
        Route(m + "/gateway/disable", disable_gateway, methods=["POST"]),
        Route(m + "/metadata", update_machine_metadata, methods=["PATCH"]),
        Route(m + "/versions", machine_versions, methods=["GET"]),
        Route("/fleets/{fleet}/metadata", update_fleet_metadata, methods=["PATCH"]),
        Route("/namespaces", list_namespaces, methods=["GET"]),
        Route("/namespaces", create_namespace, methods=["POST"]),
        Route("/namespaces/{namespace}", get_namespace, methods=["GET"]),
        Route("/namespaces/{namespace}", delete_namespace, methods=["DELETE"]),
        Route("/namespaces/{namespace}/secrets", list_secrets, methods=["GET"]),
        Route("/namespaces/{namespace}/secrets", create_secret, methods=["POST"]),
        Route("/namespaces/{namespace}/secrets/{secret}", get_secret, methods=["GET"]),
        Route("/namespaces/{namespace}/secrets/{secret}", update_secret, methods=["PATCH"]),
        Route("/namespaces/{namespace}/secrets/{secret}", delete_secret, methods=["DELETE"]),
        Route("/nodes", list_nodes, methods=["GET"]),
        Route("/fleets/{fleet}/gateways", list_gateways, methods=["GET"]),
        Route("/fleets/{fleet}/gateways", create_gateway, methods=["POST"]),
        Route("/fleets/{fleet}/gateways/{gateway}", get_gateway, methods=["GET"]),
        Route("/fleets/{fleet}/gateways/{gateway}", delete_gateway, methods=["DELETE"]),
    ]
    from valyent_cli.local import builds

    v1 += builds.routes()
    initd = [
        Route("/status", initd_status, methods=["GET"]),
        Route("/exec", initd_exec, methods=["POST"]),
        Route("/fs/ls", fs_ls, methods=["GET"]),
        Route("/fs/stat", fs_stat, methods=["GET"]),
        Route("/fs/mkdir", fs_mkdir, methods=["POST"]),
        Route("/fs/read", fs_read, methods=["GET"]),
        Route("/fs/write", fs_write, methods=["POST"]),
        Route("/fs/rm", fs_rm, methods=["POST", "DELETE"]),
    ]
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Mount("/v1", routes=v1),
        Mount("/initd/{machine_id}", routes=initd),
        *v1,  # Ravel serves the same routes at its root
    ]

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Starlette):
        _use_pidfd_child_watcher()
        (data_dir / "machines").mkdir(parents=True, exist_ok=True)
        store = Store(data_dir / "state.db")
        from valyent_cli.local import drivers, isolation

        problem = isolation_problem if driver == "process" else None
        if problem is _PROBE:
            problem = await asyncio.to_thread(isolation.probe, data_dir / "machines")
        if problem:
            print(f"warning: machines are not isolated from each other or from the host: {problem}", file=sys.stderr)
        repaired = store.repair()  # rows a server before input checks stored, which no answer could carry
        if repaired:
            print(f"repaired {repaired} stored JSON document(s) that could not be sent (lone surrogates, NaN, "
                  "invalid JSON)", file=sys.stderr, flush=True)
        supervisor = Supervisor(store, data_dir, drivers.make(driver, engine, data_dir, problem))
        app.state.store = store
        app.state.supervisor = supervisor
        store.ensure_namespace(OWN_NAMESPACE)
        if store.get_fleet("default", "default") is None:
            try:
                store.create_fleet("default", "default")
            except sqlite3.IntegrityError:
                pass
        await supervisor.reconcile()
        from valyent_cli.local.proxy import GatewayProxy

        proxy = app.state.proxy = GatewayProxy(store, supervisor)
        await proxy.start_all()
        app.state.builds = builds.BuildService(store, data_dir, supervisor.driver)
        app.state.builds.reconcile()
        try:
            yield
        finally:
            await app.state.builds.shutdown()
            await proxy.shutdown()
            await supervisor.shutdown()
            store.close()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={Problem: _problem, HTTPException: _http_error, Exception: _internal},
    )
    app.add_middleware(AuthMiddleware, token=token)
    return app


def _use_pidfd_child_watcher() -> None:
    """Python 3.11 watches each child with a thread; a pidfd watcher needs none (3.12+ does this already)."""
    if sys.version_info >= (3, 12) or not hasattr(asyncio, "PidfdChildWatcher"):
        return
    try:
        import os

        os.close(os.pidfd_open(os.getpid()))
        watcher = asyncio.PidfdChildWatcher()
        asyncio.set_child_watcher(watcher)
        watcher.attach_loop(asyncio.get_running_loop())
    except (OSError, AttributeError, NotImplementedError):
        pass
