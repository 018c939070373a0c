"""Fleets (/fleets) and their gateways (/fleets/{fleet}/gateways)."""

from __future__ import annotations

import sqlite3

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from valyent_cli.local import bodies
from valyent_cli.local.problems import Problem, check_metadata, check_name, invalid, not_found, precondition
from valyent_cli.local.routes.common import fleet_of, json_body, labels_of, namespace_of, store_of


async def list_fleets(request: Request) -> Response:
    return JSONResponse(store_of(request).list_fleets(namespace_of(request), labels_of(request)))


async def create_fleet(request: Request) -> Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise invalid("the body must be an object", "body")
    bodies.check_body(body, bodies.CREATE_FLEET)
    name = check_name(body.get("name"), "fleet")
    metadata = check_metadata(body.get("metadata"))
    store = store_of(request)
    store.ensure_namespace(namespace_of(request))  # created on first use (Ravel answers 404 for an unknown namespace)
    try:
        fleet = store.create_fleet(namespace_of(request), name)
    except sqlite3.IntegrityError:
        raise Problem("ALREADY_EXISTS", f"fleet {name!r} already exists") from None
    if metadata:
        store.set_fleet_metadata(fleet["id"], metadata)
        fleet = store.get_fleet(namespace_of(request), fleet["id"])
    return JSONResponse(fleet, 201)


async def update_fleet_metadata(request: Request) -> Response:
    fleet = fleet_of(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise invalid("the body must be an object", "body")
    bodies.check_body(body, bodies.UPDATE_METADATA)
    metadata = check_metadata(body.get("metadata") or {}, "body.metadata")
    store_of(request).set_fleet_metadata(fleet["id"], metadata)
    return JSONResponse(store_of(request).get_fleet(namespace_of(request), fleet["id"]))


async def get_fleet(request: Request) -> Response:
    return JSONResponse(fleet_of(request))


async def delete_fleet(request: Request) -> Response:
    fleet = fleet_of(request)
    store = store_of(request)
    live = store.count_live_machines(fleet["id"])
    if live:
        raise precondition(
            f"fleet {fleet['name']!r} still has {live} machine(s) that are not destroyed: destroy them first"
        )
    store.destroy_fleet(fleet["id"])
    await request.app.state.proxy.sync()
    return JSONResponse({**fleet, "status": "destroyed"})


# -- gateways ----------------------------------------------------------------------------------------------------


async def create_gateway(request: Request) -> Response:
    fleet = fleet_of(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise invalid("the body must be an object", "body")
    bodies.check_body(body, bodies.CREATE_GATEWAY)
    # the name is optional: Ravel generates one from the fleet's (ravel/gateways.go generateGatewayName)
    generated = body.get("name") in (None, "")
    name = gateway_name(fleet["name"]) if generated else check_name(body.get("name"), "gateway")
    port = body.get("target_port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise invalid("target_port must be an integer from 1 to 65535", "body.target_port", port)
    gw = None
    for _ in range(5 if generated else 1):  # a generated name taken already: draw another
        try:
            gw = store_of(request).create_gateway(namespace_of(request), fleet["id"], name, port)
            break
        except sqlite3.IntegrityError:
            taken, name = name, gateway_name(fleet["name"])
    if gw is None:
        raise Problem("ALREADY_EXISTS", f"gateway {taken!r} already exists in fleet {fleet['name']!r}")
    await request.app.state.proxy.open(gw["id"])
    return JSONResponse(store_of(request).gateway_by_id(gw["id"]), 201)


def gateway_name(fleet: str) -> str:
    """Ravel's generated gateway name (ravel/gateways.go generateGatewayName): the fleet's name (past 58 characters,
    Ravel keeps what follows the 58th, its trailing dashes removed), a dash and 4 of [a-z0-9]."""
    import secrets
    import string

    base = fleet
    if len(fleet) > 58:
        base = fleet[58:].rstrip("-")
    return base + "-" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(4))


async def list_gateways(request: Request) -> Response:
    return JSONResponse(store_of(request).list_gateways(fleet_of(request)["id"]))


def _gateway(request: Request) -> dict:
    gw = store_of(request).get_gateway(fleet_of(request)["id"], request.path_params["gateway"])
    if gw is None:
        raise not_found("gateway")
    return gw


async def get_gateway(request: Request) -> Response:
    return JSONResponse(_gateway(request))


async def delete_gateway(request: Request) -> Response:
    gw = _gateway(request)
    store_of(request).delete_gateway(gw["id"])
    await request.app.state.proxy.close(gw["id"])
    return JSONResponse(gw)
