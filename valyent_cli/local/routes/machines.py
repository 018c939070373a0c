"""Machines (/fleets/{fleet}/machines/{machine}): create, list, get, start, stop, destroy, wait, events, exec,
metadata, versions, and the machine's gateway switch. Logs have their own module (logs.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from valyent_cli.local import bodies
from valyent_cli.local.problems import (
    Problem,
    check_create_machine,
    check_exec,
    check_metadata,
    check_stop_config,
    invalid,
    not_found,
    precondition,
    unprocessable,
)
from valyent_cli.local.routes.common import (
    fleet_of,
    json_body,
    labels_of,
    machine_of,
    machine_row_of,
    namespace_of,
    query_flag,
    store_of,
    supervisor_of,
)
from valyent_cli.local.supervisor import ShuttingDown

WAIT_STATES = ("running", "stopped", "destroyed")
#: a fleet of at most this many machines (destroyed ones included) is listed on the event loop
INLINE_LIST_MACHINES = 50


async def create_machine(request: Request) -> Response:
    fleet = fleet_of(request)
    body = check_create_machine(bodies.check_body(await json_body(request), bodies.CREATE_MACHINE))
    store = store_of(request)
    sup = supervisor_of(request)
    config = body["config"]
    problem = sup.check_user(config)
    if problem:
        raise invalid(problem, "body.config.workload.init.user", (config.get("workload") or {})["init"]["user"])
    secret_env = {}
    for ref in (config.get("workload") or {}).get("secrets") or []:  # resolved now, as Ravel does
        value = store.secret_value(namespace_of(request), ref["name"])
        if value is None:
            raise invalid("Secret not found: " + ref["name"])
        secret_env[ref["env_var"]] = value
    guest = config["guest"]
    mid = store.insert_machine(namespace=namespace_of(request), fleet_id=fleet["id"], region=body["region"],
                               config=config, metadata=check_metadata(body.get("metadata")),
                               secret_env=secret_env, health=sup.initial_health(config),
                               resources={"cpus_mhz": guest["cpus"] * 1000, "memory_mb": guest["memory_mb"]})
    if body.get("enable_machine_gateway"):
        store.update_machine(mid, gateway_enabled=1)
    await supervisor_of(request).create(mid, bool(body.get("skip_start")))
    notice = supervisor_of(request).driver.create_notice(body["config"])
    # the CLI says it once on stderr; ASCII only, as a header must be
    headers = {"Valyent-Notice": notice.encode("ascii", "replace").decode()} if notice else None
    return JSONResponse(machine_of(request, mid), 201, headers=headers)


async def list_machines(request: Request) -> Response:
    destroyed = query_flag(request, "destroyed")
    labels = labels_of(request)
    store = store_of(request)
    # A small fleet's answer again while nothing was written: the loop's connection counts every row it changes (all
    # of the store's writes go through it), so while the count stands the fleet lookup, the size check and the list
    # would all come out the same. A fleet polled by several clients is looked up and built once per change.
    cache = request.app.state._state.setdefault("list_cache", {})
    key = (namespace_of(request), request.path_params["fleet"], destroyed, tuple(sorted(labels.items())))
    stamp = store.db.total_changes
    hit = cache.get(key)
    if hit is not None and hit[0] == stamp:
        return Response(hit[1], media_type="application/json")
    fleet = fleet_of(request)
    # Built as text from the stored JSON; in a worker thread for a big fleet, so that it never holds up the event
    # loop (a small one is built at once: the hop to a thread costs more than its query).
    if store.fleet_has_at_most(fleet["id"], INLINE_LIST_MACHINES):
        body = store.list_machines_body(fleet["id"], destroyed, labels=labels)
        if len(cache) >= 256:
            cache.clear()
        cache[key] = (stamp, body)
    else:
        body = await asyncio.to_thread(lambda: store.list_machines_body(fleet["id"], destroyed, store.reader(),
                                                                        labels))
    return Response(body, media_type="application/json")


async def update_machine_metadata(request: Request) -> Response:
    mid = machine_row_of(request)["id"]
    body = await json_body(request)
    if not isinstance(body, dict):
        raise invalid("the body must be an object", "body")
    bodies.check_body(body, bodies.UPDATE_METADATA)
    store_of(request).set_machine_metadata(mid, check_metadata(body.get("metadata") or {}, "body.metadata"))
    return JSONResponse(machine_of(request, mid))


async def machine_versions(request: Request) -> Response:
    return JSONResponse(store_of(request).list_versions(machine_row_of(request)["id"]))


async def get_machine(request: Request) -> Response:
    return JSONResponse(machine_of(request, machine_row_of(request)["id"]))


async def start_machine(request: Request) -> Response:
    mid = machine_row_of(request)["id"]
    await supervisor_of(request).start(mid)
    return JSONResponse(machine_of(request, mid))


async def stop_machine(request: Request) -> Response:
    mid = machine_row_of(request)["id"]
    override = check_stop_config(bodies.check_body(await json_body(request, optional=True), bodies.STOP_CONFIG), "body")
    await supervisor_of(request).stop(mid, override)
    return JSONResponse(machine_of(request, mid))


async def delete_machine(request: Request) -> Response:
    mid = machine_row_of(request)["id"]
    await supervisor_of(request).destroy(mid, force=query_flag(request, "force"))
    return JSONResponse(machine_of(request, mid))


async def wait_machine(request: Request) -> Response:
    """As Ravel (ravel/server/endpoints/machines.go WaitMachineStatusRequest, `timeout` a uint with minimum 1 and
    maximum 60, `status` required): huma answers 422 for a timeout that is not a whole number or is out of range
    and for a missing status; the handler 400 for a missing timeout; a destroyed machine is a 404, since Ravel's
    getMachine excludes destroyed rows (ravel/state/db/machines.go)."""
    row = machine_row_of(request)
    mid = row["id"]
    status = request.query_params.get("status") or ""
    raw = request.query_params.get("timeout") or ""
    if not status:
        raise unprocessable("required query parameter is missing", "query.status")
    timeout = 0
    if raw:
        if not raw.isascii() or not raw.isdigit():
            raise unprocessable("invalid integer", "query.timeout", raw)
        timeout = int(raw)
        if timeout < 1:
            raise unprocessable("expected number >= 1", "query.timeout", timeout)
        if timeout > 60:
            raise unprocessable("expected number <= 60", "query.timeout", timeout)
    if timeout == 0:
        raise invalid("timeout must be between 1 and 60 seconds")
    if row["state"] == "destroyed":
        raise not_found("machine")
    if status not in WAIT_STATES:
        raise invalid(f"status must be one of {', '.join(WAIT_STATES)}", "query.status", status)
    try:
        reached = await supervisor_of(request).wait_for(mid, status, timeout)
    except ShuttingDown:
        raise Problem("INTERNAL", "the sandbox server is shutting down", status=503) from None
    if not reached:
        raise Problem("DEADLINE_EXCEEDED", f"machine did not reach status {status} within {timeout}s")
    return JSONResponse({"ok": True, "state": status})


async def machine_events(request: Request) -> Response:
    return JSONResponse(store_of(request).list_events(machine_row_of(request)["id"]))


class _AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: an exec's output bytes that are not UTF-8 travel as lone
    surrogates ("\\udc80"), which the client writes back as the same bytes."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


async def exec_machine(request: Request) -> Response:
    mid = machine_row_of(request)["id"]
    cmd, timeout_ms = check_exec(bodies.check_body(await json_body(request), bodies.EXEC))
    return _AsciiJSONResponse(await supervisor_of(request).exec(mid, cmd, timeout_ms))


async def _set_gateway(request: Request, enabled: bool) -> Response:
    row = machine_row_of(request)
    if row["state"] in ("destroying", "destroyed"):
        raise precondition(f"machine is {row['state']}")
    store_of(request).update_machine(row["id"], gateway_enabled=int(enabled))
    # before answering: once disabled, no new request goes to the machine (those under way finish)
    request.app.state.proxy.machine_changed(row["id"])
    return JSONResponse(machine_of(request, row["id"]))


async def enable_gateway(request: Request) -> Response:
    return await _set_gateway(request, True)


async def disable_gateway(request: Request) -> Response:
    return await _set_gateway(request, False)
