"""Ravel's problem JSON, and the input validation that produces it."""

from __future__ import annotations

import re
import signal
from http import HTTPStatus
from typing import Any

from valyent_cli.names import object_name_error  # the one rule, shared with the CLI

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
#: control characters (C0 but tab, DEL, C1): refused in env keys and values
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def check_namespace(value: Any, location: str = "query.namespace") -> str:
    """A namespace from a request (query or path), refused with 400 unless it follows Ravel's object-name rule."""
    error = object_name_error(value)
    if error:
        raise invalid(f"invalid namespace {value!r}: {error}", location, value)
    return value


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
    """A stop signal's number: exactly one of the names a Ravel node accepts (`internal/signals/signals.go`
    FromString, case and `SIG` prefix included), the one list in `api.constants.SIGNALS`."""
    if not isinstance(name, str) or not name:
        raise invalid("signal must be a signal name such as SIGTERM", location, name)
    if name not in SIGNALS:
        raise invalid(f"unknown signal {name!r}: one of {', '.join(SIGNALS)}", location, name)
    return int(signal.Signals[name])


def check_stop_config(sc: Any, location: str) -> dict:
    sc = _obj(sc, location) or {}
    if "timeout" in sc and sc["timeout"] is not None:
        t = sc["timeout"]
        if not _is_int(t) or not 0 <= t <= 30:
            raise invalid("stop timeout must be a whole number of seconds from 0 to 30", f"{location}.timeout", t)
    if "signal" in sc and sc["signal"] is not None:
        signal_number(sc["signal"], f"{location}.signal")
    return sc


from valyent_cli.api.constants import RESTART_POLICIES, SIGNALS  # noqa: E402 - the one source


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
        if _CONTROL.search(item):
            # a line break in a key or value became a line of its own in podman's env file (`*` there imported the
            # sandbox server's whole environment: issue 27 item 4)
            raise invalid(f"env entry {item[:80]!r} holds a control character (a line break, an escape...), which "
                          "an environment variable cannot carry here", f"body.config.workload.env[{i}]", item)
    for key in ("restart",):  # Ravel's json tag (api/machines.go Workload.Restart); `restart_policy` is unexpected
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
    _check_workload_extras(workload)
    check_metadata(body.get("metadata"))
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


# -- Ravel's limits (api/metadata.go, ravel/validation.go, ravel/machines.go, api/secrets.go) -------------------------
MAX_LABELS, MAX_ANNOTATIONS = 64, 32
MAX_LABEL_KEY, MAX_LABEL_VALUE = 63, 255
MAX_ANNOTATION_KEY, MAX_ANNOTATION_VALUE = 253, 65536
RESERVED_PREFIX = "ravel."
_LABEL_KEY = re.compile(r"^[A-Za-z0-9._/-]+$")
SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VOLUME_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,62}$")


def unprocessable(message: str, location: str, value: Any = None) -> Problem:
    """huma's own validation failure (a field against its declared schema): 422, `Code` UNKNOWN as Ravel's error
    builder makes it for that status (internal/humautil/errors.go)."""
    err: dict[str, Any] = {"message": message, "location": location}
    if value is not None:
        err["value"] = value
    return Problem("UNKNOWN", "validation failed", [err], status=422)


def check_metadata(meta: Any, location: str = "body.metadata") -> dict | None:
    """Labels and annotations, with Ravel's limits and messages; returns the metadata (None when empty)."""
    if meta is None:
        return None
    meta = _obj(meta, location)
    out = {}
    for kind, max_n, max_k, max_v in (("labels", MAX_LABELS, MAX_LABEL_KEY, MAX_LABEL_VALUE),
                                      ("annotations", MAX_ANNOTATIONS, MAX_ANNOTATION_KEY, MAX_ANNOTATION_VALUE)):
        items = meta.get(kind)
        if items is None:
            continue
        if not isinstance(items, dict) or not all(isinstance(v, str) for v in items.values()):
            raise unprocessable("expected object of strings", f"{location}.{kind}", items)
        loc = f"metadata.{kind}"
        one = kind[:-1]
        if len(items) > max_n:
            raise Problem("INVALID_ARGUMENT", f"too many {kind}: maximum {max_n} allowed, got {len(items)}",
                          [{"message": f"maximum {max_n} {kind} allowed", "location": loc,
                            "value": f"{len(items)} {kind}"}])
        for key, value in items.items():
            if not key:
                raise invalid(f"{one} key cannot be empty", loc)
            if len(key) > max_k:
                raise Problem("INVALID_ARGUMENT",
                              f"{one} key exceeds maximum length: {max_k} characters allowed, got {len(key)}",
                              [{"message": f"{one} key exceeds maximum length of {max_k} characters",
                                "location": loc, "value": key}])
            if key.startswith(RESERVED_PREFIX):
                raise Problem("INVALID_ARGUMENT", f"{one} key uses reserved prefix '{RESERVED_PREFIX}'",
                              [{"message": f"{one} keys cannot start with reserved prefix '{RESERVED_PREFIX}'",
                                "location": loc, "value": key}])
            if kind == "labels" and not _LABEL_KEY.match(key):
                raise Problem("INVALID_ARGUMENT", f"invalid label key: {key}",
                              [{"message": "label keys can only contain alphanumeric characters, hyphens, "
                                           "underscores, dots, and forward slashes", "location": loc, "value": key}])
            if len(value) > max_v:
                raise Problem("INVALID_ARGUMENT",
                              f"{one} value exceeds maximum length: {max_v} characters allowed, got {len(value)}",
                              [{"message": f"{one} value exceeds maximum length of {max_v} characters",
                                "location": loc, "value": key}])
        if items:
            out[kind] = dict(items)
    return out or None


def check_secret_payload(body: Any, *, create: bool) -> tuple[str | None, str]:
    body = _obj(body, "body", required=True)
    name = None
    if create:
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 63 or not SECRET_NAME.match(name):
            raise unprocessable("expected string to match pattern ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$, 1-63 characters",
                                "body.name", name)
    value = body.get("value")
    if not isinstance(value, str) or not value:
        raise unprocessable("expected length >= 1", "body.value", None)
    if "\0" in value:  # it becomes an environment value, which cannot hold NUL: refused here, not at create (item 17)
        raise invalid("a secret value cannot hold a NUL character (it becomes an environment variable)", "body.value")
    return name, value


def check_volume_name(name: Any, location: str) -> str:
    """A volume name names a directory (process driver) or an engine volume of the sandbox."""
    if not isinstance(name, str) or not _VOLUME_NAME.match(name):
        raise invalid(f"invalid volume name {name!r}: 1-63 characters, ASCII letters, digits, '-', '_' and "
                      "'.', not starting with '.'", location, name)
    return name


#: where a volume may not go: the kernel's filesystems a machine is given (a volume over /proc hides what
#: machine_init masks in it) and `/` itself (issue 27 item 1, issue 28 item 11)
VOLUME_PATH_FORBIDDEN = ("/proc", "/dev", "/sys")


def check_volume_path(path: str, location: str) -> str:
    """A volume's mount point: absolute, a directory below `/`, not under /proc, /dev or /sys, no `..`, no NUL and
    no `:` (the engines read `PATH:OPTIONS`, so `/data:ro` would reach podman as a mount option: item 18)."""
    norm = "/" + "/".join(p for p in path.split("/") if p not in ("", "."))
    if ".." in norm.split("/") or norm == "/" or "\0" in path:
        raise invalid(f"Volume path {path!r} must name a directory below /", location, path)
    if any(norm == top or norm.startswith(top + "/") for top in VOLUME_PATH_FORBIDDEN):
        raise invalid(f"Volume path {path!r} is under {norm.split('/')[1] and '/' + norm.split('/')[1]}, which the "
                      "sandbox mounts itself: choose another directory", location, path)
    if ":" in path:
        raise invalid(f"Volume path {path!r} holds ':', which container engines read as mount options", location, path)
    return path


def _check_workload_extras(workload: dict) -> None:
    base = "body.config.workload"
    secrets = workload.get("secrets")
    if secrets is not None:
        if not isinstance(secrets, list):
            raise invalid("secrets must be an array", f"{base}.secrets", None)
        for i, ref in enumerate(secrets):
            ref = _obj(ref, f"{base}.secrets[{i}]", required=True)
            if not isinstance(ref.get("name"), str) or not ref["name"]:
                raise invalid("secret name is required", f"{base}.secrets[{i}].name", ref.get("name"))
            env_var = ref.get("env_var")
            if not isinstance(env_var, str) or not ENV_NAME.match(env_var):
                raise invalid("env_var must be an environment variable name", f"{base}.secrets[{i}].env_var", env_var)
    volumes = workload.get("volumes")
    if volumes is not None:
        if not isinstance(volumes, list):
            raise invalid("volumes must be an array", f"{base}.volumes", None)
        if len(volumes) > 10:
            raise invalid("Too many volumes: maximum 10 allowed")
        names, paths = set(), set()
        for i, vol in enumerate(volumes):
            vol = _obj(vol, f"{base}.volumes[{i}]", required=True)
            name, path = vol.get("name"), vol.get("path")
            if not isinstance(name, str) or not name:
                raise invalid("Volume name cannot be empty")
            check_volume_name(name, f"{base}.volumes[{i}].name")
            if name in names:
                raise invalid("Duplicate volume name: " + name)
            names.add(name)
            if not isinstance(path, str) or not path:
                raise invalid("Volume path cannot be empty")
            if path[0] != "/":
                raise invalid("Volume path must be absolute: " + path)
            check_volume_path(path, f"{base}.volumes[{i}].path")
            if path in paths:
                raise invalid("Duplicate volume path: " + path)
            paths.add(path)
    networks = workload.get("private_networks")
    if networks is not None:
        if not isinstance(networks, list):
            raise invalid("private_networks must be an array", f"{base}.private_networks", None)
        if len(networks) > 5:
            raise invalid("Too many private networks: maximum 5 allowed")
        seen = set()
        for i, net in enumerate(networks):
            net = _obj(net, f"{base}.private_networks[{i}]", required=True)
            name, ip = net.get("name"), net.get("ip")
            if not isinstance(name, str) or not name:
                raise invalid("Private network name cannot be empty")
            if name in seen:
                raise invalid("Duplicate private network name: " + name)
            seen.add(name)
            if not isinstance(ip, str) or not ip:
                raise invalid("Private network IP cannot be empty")
            if "/" not in ip:
                raise invalid("Private network IP must be in CIDR notation (e.g., 10.0.1.2/24): " + ip)
            import ipaddress

            try:
                ipaddress.ip_interface(ip)
            except ValueError:
                raise invalid("Invalid IP address in private network: " + ip) from None
    hc = workload.get("health_check")
    if hc is not None:
        hc = _obj(hc, f"{base}.health_check")
        cmd = hc.get("exec")
        if not isinstance(cmd, list) or not cmd or not all(isinstance(x, str) for x in cmd) or not cmd[0]:
            raise invalid("health_check.exec must be a non-empty array of strings", f"{base}.health_check.exec", cmd)
        for key in ("interval", "timeout", "retries"):
            v = hc.get(key)
            if v is not None and (not _is_int(v) or v < 0):
                raise unprocessable("expected integer >= 0", f"{base}.health_check.{key}", v)
