"""Ravel's problem JSON, and the input validation that produces it."""

from __future__ import annotations

import re
import signal
from http import HTTPStatus
from typing import Any

STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "DEADLINE_EXCEEDED": 408,
    "RESOURCES_EXHAUSTED": 429,
    "NOT_IMPLEMENTED": 501,
    "INTERNAL": 500,
}


class Problem(Exception):
    def __init__(self, code: str, detail: str, errors: list[dict] | None = None, status: int | None = None):
        super().__init__(detail)
        self.code = code
        self.status = status or STATUS[code]
        self.detail = detail
        self.errors = errors

    def body(self) -> dict:
        return {
            "Code": self.code,
            "status": self.status,
            "title": HTTPStatus(self.status).phrase,
            "detail": self.detail,
            "errors": self.errors if self.errors is not None else [{"message": self.detail}],
        }


def invalid(detail: str, location: str | None = None, value: Any = None) -> Problem:
    err: dict[str, Any] = {"message": detail}
    if location:
        err["location"] = location
    if value is not None:
        err["value"] = value
    return Problem("INVALID_ARGUMENT", detail, [err])


def not_found(what: str) -> Problem:
    return Problem("NOT_FOUND", f"{what} not found")


def precondition(detail: str) -> Problem:
    return Problem("FAILED_PRECONDITION", detail)


_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def check_name(value: Any, what: str, location: str = "body.name") -> str:
    if not isinstance(value, str) or not value:
        raise invalid(f"{what} name is required", location, value)
    if not _NAME.match(value):
        raise invalid(
            f"invalid {what} name {value!r}: 1-63 characters, ASCII letters, digits and '-', "
            "not starting or ending with '-'",
            location,
            value,
        )
    return value


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _obj(v: Any, location: str, required: bool = False) -> dict | None:
    if v is None:
        if required:
            raise invalid(f"{location.removeprefix('body.')} is required", location)
        return None
    if not isinstance(v, dict):
        raise invalid(f"{location.removeprefix('body.')} must be an object", location, v)
    return v


def _str_list(v: Any, location: str) -> list[str] | None:
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise invalid(f"{location.removeprefix('body.')} must be an array of strings", location, v)
    return v


def signal_number(name: Any, location: str = "body.signal") -> int:
    if not isinstance(name, str) or not name:
        raise invalid("signal must be a signal name such as SIGTERM", location, name)
    key = name.upper()
    if not key.startswith("SIG"):
        key = "SIG" + key
    try:
        sig = signal.Signals[key]
    except KeyError:
        raise invalid(f"unknown signal {name!r}", location, name) from None
    return int(sig)


def check_stop_config(sc: Any, location: str) -> dict:
    sc = _obj(sc, location) or {}
    if "timeout" in sc and sc["timeout"] is not None:
        t = sc["timeout"]
        if not _is_int(t) or not 0 <= t <= 30:
            raise invalid("stop timeout must be a whole number of seconds from 0 to 30", f"{location}.timeout", t)
    if "signal" in sc and sc["signal"] is not None:
        signal_number(sc["signal"], f"{location}.signal")
    return sc


from valyent_cli.api.types import RESTART_POLICIES  # noqa: E402 - the one source


def check_create_machine(body: Any) -> dict:
    """Validate a CreateMachinePayload the way Ravel does; return it unchanged."""
    body = _obj(body, "body", required=True)
    region = body.get("region")
    if not isinstance(region, str) or not region:
        raise invalid("region is required", "body.region", region)
    config = _obj(body.get("config"), "body.config", required=True)
    image = config.get("image")
    if not isinstance(image, str) or not image.strip():
        raise invalid("config.image is required", "body.config.image", image)
    guest = _obj(config.get("guest"), "body.config.guest", required=True)
    kind = guest.get("cpu_kind")
    if not isinstance(kind, str) or not kind:
        raise invalid("config.guest.cpu_kind is required", "body.config.guest.cpu_kind", kind)
    for key in ("memory_mb", "cpus"):
        v = guest.get(key)
        if not _is_int(v) or v < 1:
            raise invalid(f"config.guest.{key} must be an integer >= 1", f"body.config.guest.{key}", v)
    workload = _obj(config.get("workload"), "body.config.workload") or {}
    env = _str_list(workload.get("env"), "body.config.workload.env") or []
    for i, item in enumerate(env):
        key, sep, _ = item.partition("=")
        if not sep or not key or "\0" in item:
            raise invalid(f"env entry {item!r} must be KEY=VALUE", f"body.config.workload.env[{i}]", item)
    for key in ("restart", "restart_policy"):  # the contract says restart; Ravel's Go type says restart_policy
        restart = _obj(workload.get(key), f"body.config.workload.{key}")
        if restart is None:
            continue
        policy = restart.get("policy")
        if policy is not None and policy not in RESTART_POLICIES:
            raise invalid(
                f"restart policy must be one of {', '.join(RESTART_POLICIES)}",
                f"body.config.workload.{key}.policy",
                policy,
            )
        mr = restart.get("max_retries")
        if mr is not None and (not _is_int(mr) or mr < 0):
            raise invalid("max_retries must be an integer >= 0", f"body.config.workload.{key}.max_retries", mr)
    init = _obj(workload.get("init"), "body.config.workload.init") or {}
    _str_list(init.get("cmd"), "body.config.workload.init.cmd")
    _str_list(init.get("entrypoint"), "body.config.workload.init.entrypoint")
    if init.get("user") is not None and not isinstance(init.get("user"), str):
        raise invalid("init.user must be a string", "body.config.workload.init.user", init.get("user"))
    for loc, v in (("workload.auto_destroy", workload.get("auto_destroy")), ("auto_destroy", config.get("auto_destroy"))):
        if v is not None and not isinstance(v, bool):
            raise invalid(f"{loc} must be a boolean", f"body.config.{loc}", v)
    check_stop_config(config.get("stop_config"), "body.config.stop_config")
    for key in ("skip_start", "enable_machine_gateway"):
        if body.get(key) is not None and not isinstance(body[key], bool):
            raise invalid(f"{key} must be a boolean", f"body.{key}", body[key])
    return body


def check_exec(body: Any) -> tuple[list[str], int]:
    body = _obj(body, "body", required=True)
    cmd = body.get("cmd")
    if not isinstance(cmd, list) or not cmd or not all(isinstance(x, str) for x in cmd) or not cmd[0]:
        raise invalid("cmd must be a non-empty array of strings", "body.cmd", cmd)
    timeout = body.get("timeout_ms")
    if timeout is None or timeout == 0:
        timeout = 30_000
    if not _is_int(timeout) or timeout < 0 or timeout > 3_600_000:
        raise invalid("timeout_ms must be an integer from 1 to 3600000", "body.timeout_ms", timeout)
    return cmd, timeout
