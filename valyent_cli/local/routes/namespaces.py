"""Namespaces (/namespaces) and their secrets (/namespaces/{namespace}/secrets), as Ravel serves them."""

from __future__ import annotations

import sqlite3

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from valyent_cli.local import bodies
from valyent_cli.local.problems import Problem, check_name, check_secret_payload, invalid, not_found, precondition
from valyent_cli.local.routes.common import OWN_NAMESPACE, json_body, path_namespace, store_of


def _namespace_name(request: Request) -> str:
    name = path_namespace(request)
    store = store_of(request)
    if store.get_namespace(name) is None and not store.namespace_in_use(name):
        raise not_found("namespace")
    store.ensure_namespace(name)
    return name


async def list_namespaces(request: Request) -> Response:
    return JSONResponse(store_of(request).list_namespaces())


async def create_namespace(request: Request) -> Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise invalid("the body must be an object", "body")
    bodies.check_body(body, bodies.CREATE_NAMESPACE)
    name = check_name(body.get("name"), "namespace")
    try:
        return JSONResponse(store_of(request).create_namespace(name))
    except sqlite3.IntegrityError:
        raise Problem("ALREADY_EXISTS", f"namespace {name!r} already exists") from None


async def get_namespace(request: Request) -> Response:
    return JSONResponse(store_of(request).get_namespace(_namespace_name(request)))


async def delete_namespace(request: Request) -> Response:
    name = _namespace_name(request)
    store = store_of(request)
    if name == OWN_NAMESPACE:
        raise precondition(f"namespace {name!r} is the sandbox's own")
    if store.namespace_in_use(name):
        raise precondition(f"namespace {name!r} still has fleets: delete them first")
    store.delete_namespace(name)
    return Response(status_code=204)


async def list_secrets(request: Request) -> Response:
    return JSONResponse(store_of(request).list_secrets(_namespace_name(request)))


async def create_secret(request: Request) -> Response:
    ns = _namespace_name(request)
    name, value = check_secret_payload(bodies.check_body(await json_body(request), bodies.CREATE_SECRET), create=True)
    try:
        return JSONResponse(store_of(request).create_secret(ns, name, value))
    except sqlite3.IntegrityError:
        raise Problem("ALREADY_EXISTS", f"secret {name!r} already exists") from None


def _secret(request: Request) -> tuple[str, dict]:
    ns = _namespace_name(request)
    secret = store_of(request).get_secret(ns, request.path_params["secret"])
    if secret is None:
        raise not_found("secret")
    return ns, secret


async def get_secret(request: Request) -> Response:
    return JSONResponse(_secret(request)[1])


async def update_secret(request: Request) -> Response:
    ns, secret = _secret(request)
    _, value = check_secret_payload(bodies.check_body(await json_body(request), bodies.UPDATE_SECRET), create=False)
    store_of(request).update_secret(ns, secret["name"], value)
    return JSONResponse(store_of(request).get_secret(ns, secret["name"]))


async def delete_secret(request: Request) -> Response:
    ns, secret = _secret(request)
    store_of(request).delete_secret(ns, secret["name"])
    return Response(status_code=204)
