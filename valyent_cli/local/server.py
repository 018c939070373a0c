"""The sandbox's HTTP surface: the control plane under /v1, each machine's initd under /initd/{machine_id}.

`create_app(data_dir, token)` returns a Starlette app whose lifespan opens the store, reconciles machines left by
a previous server, and on shutdown stops every machine. Shapes, paths and codes follow api-contract.md.

This module maps every path to its handler (the table in :func:`create_app`) and holds what belongs to the server
itself: the token check, /healthz, the node list, the error handlers. The handlers live in `local/routes/`, one
module per resource; their names stay importable from here.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import sys
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from valyent_cli.local.problems import Problem
from valyent_cli.local.routes.common import MAX_BODY, OWN_NAMESPACE, NamespaceGuard
from valyent_cli.local.routes.fleets import (
    create_fleet, create_gateway, delete_fleet, delete_gateway, get_fleet, get_gateway, list_fleets, list_gateways,
    update_fleet_metadata,
)
from valyent_cli.local.routes.initd import fs_ls, fs_mkdir, fs_read, fs_rm, fs_stat, fs_write, initd_exec, initd_status
from valyent_cli.local.routes.logs import LOG_BATCH, LOG_HISTORY_BATCH, machine_logs
from valyent_cli.local.routes.machines import (
    WAIT_STATES, create_machine, delete_machine, disable_gateway, enable_gateway, exec_machine, get_machine,
    list_machines, machine_events, machine_versions, start_machine, stop_machine, update_machine_metadata,
    wait_machine,
)
from valyent_cli.local.routes.namespaces import (
    create_namespace, create_secret, delete_namespace, delete_secret, get_namespace, get_secret, list_namespaces,
    list_secrets, update_secret,
)
from valyent_cli.local.store import Store
from valyent_cli.local.supervisor import Supervisor

__all__ = [
    "LOG_BATCH", "LOG_HISTORY_BATCH", "MAX_BODY", "OWN_NAMESPACE", "WAIT_STATES", "AuthMiddleware", "create_app",
    "create_fleet", "create_gateway", "create_machine", "create_namespace", "create_secret", "delete_fleet",
    "delete_gateway", "delete_machine", "delete_namespace", "delete_secret", "disable_gateway", "enable_gateway",
    "exec_machine", "fs_ls", "fs_mkdir", "fs_read", "fs_rm", "fs_stat", "fs_write", "get_fleet", "get_gateway",
    "get_machine", "get_namespace", "get_secret", "healthz", "initd_exec", "initd_status", "list_fleets",
    "list_gateways", "list_machines", "list_namespaces", "list_nodes", "list_secrets", "machine_events",
    "machine_logs", "machine_versions", "start_machine", "stop_machine", "update_fleet_metadata",
    "update_machine_metadata", "update_secret", "wait_machine",
]



class AuthMiddleware:
    """Every request but /healthz needs `Authorization: Bearer <token>`, or the raw token as the whole header (Ravel
    compares the whole header with its configured token, ravel/server/auth.go: a profile with `auth_scheme raw`
    sends it so); else the console's 401 body."""

    def __init__(self, app, token: str):
        self.app = app
        self.expected = token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] != "/healthz":
            header = None
            for key, value in scope["headers"]:
                if key == b"authorization":
                    header = value.strip()
                    break
            given = b""
            if header is not None:
                scheme, sep, rest = header.partition(b" ")
                given = rest.strip() if sep and scheme.lower() == b"bearer" else header
            if header is None or not secrets.compare_digest(given, self.expected):
                response = JSONResponse(
                    {"errors": [{"message": "Unauthorized access"}]}, 401, headers={"WWW-Authenticate": "Bearer"}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- the server itself -------------------------------------------------------------------------------------------
async def healthz(request: Request) -> Response:
    sup = getattr(request.app.state, "supervisor", None)
    body: dict[str, Any] = {"ok": True}
    if sup is not None:
        body["driver"] = sup.driver.name
        body["isolation"] = sup.isolation
        if sup.isolation == "none":
            body["isolation_problem"] = sup.isolation_problem
    return JSONResponse(body)


async def list_nodes(request: Request) -> Response:
    import socket

    from valyent_cli.defaults import DEFAULT_REGION
    from valyent_cli.local.store import now_rfc3339

    # one node, in the region machines get by default (gra-1, as in the seed's examples): `nodes list` and
    # `machines list` agree
    return JSONResponse([{"id": "local", "address": request.url.hostname or "127.0.0.1",
                          "agent_port": request.url.port or 0, "region": DEFAULT_REGION,
                          "heartbeated_at": now_rfc3339(), "name": socket.gethostname()}])


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
        store.compact()
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
    app.add_middleware(NamespaceGuard)  # inside the token check: a stranger learns nothing from a 400
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
