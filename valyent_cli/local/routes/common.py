"""What every route handler uses: the app's store and supervisor, the request's namespace and label filter,
its JSON body (size-capped, checked), and the fleet or machine its path names (404 otherwise)."""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from valyent_cli.local.problems import Problem, check_namespace, invalid, not_found
from valyent_cli.local.store import Store
from valyent_cli.local.supervisor import Supervisor

OWN_NAMESPACE = "default"  # what a request without ?namespace= uses; `local start` writes it into the profile


def supervisor_of(request: Request) -> Supervisor:
    return request.app.state.supervisor


def store_of(request: Request) -> Store:
    return request.app.state.store


def namespace_of(request: Request) -> str:
    """The request's `?namespace=` (the sandbox's own without one), checked (NamespaceGuard checked it already)."""
    return check_namespace(request.query_params.get("namespace") or OWN_NAMESPACE)


def path_namespace(request: Request) -> str:
    """The `{namespace}` of a /namespaces/{namespace}/... path, checked."""
    return check_namespace(request.path_params["namespace"], "path.namespace")


_NS_PATH = re.compile(r"^(?:/v1)?/namespaces/([^/]*)")


class NamespaceGuard:
    """A namespace names directories (volumes) and engine objects of the sandbox: every request that names one, in
    `?namespace=` or in a /namespaces/{namespace} path, on every route, is refused with 400 unless the name follows
    Ravel's object-name rule (problems.check_namespace), before any handler runs (issue 27 item 2)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            try:
                for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
                    if key == "namespace" and value:
                        check_namespace(value)
                match = _NS_PATH.match(scope.get("path", ""))
                if match:
                    check_namespace(match.group(1), "path.namespace")
            except Problem as problem:
                from starlette.responses import JSONResponse

                await JSONResponse(problem.body(), problem.status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def labels_of(request: Request) -> dict[str, str]:
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


async def read_body(request: Request) -> bytes:
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


async def json_body(request: Request, *, optional: bool = False) -> Any:
    raw = await read_body(request)
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


def fleet_of(request: Request) -> dict:
    ref = request.path_params["fleet"]
    fleet = store_of(request).get_fleet(namespace_of(request), ref)
    if fleet is None:
        raise not_found("fleet")
    return fleet


def machine_row_of(request: Request) -> sqlite3.Row:
    fleet = fleet_of(request)
    row = store_of(request).machine_row(request.path_params["machine"])
    if row is None or row["fleet_id"] != fleet["id"]:
        raise not_found("machine")
    return row


def machine_of(request: Request, machine_id: str) -> dict:
    return store_of(request).get_machine(machine_id)


GO_TRUE, GO_FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")


def query_flag(request: Request, name: str) -> bool:
    """A boolean query parameter as huma v2.27.0 reads it (huma.go: Go's strconv.ParseBool; empty is unset, false):
    anything else is a 422 "invalid boolean"."""
    value = request.query_params.get(name) or ""
    if value == "" or value in GO_FALSE:
        return False
    if value in GO_TRUE:
        return True
    from valyent_cli.local.problems import unprocessable

    raise unprocessable("invalid boolean", f"query.{name}", value)
