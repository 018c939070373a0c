"""The machine create payload: built from defaults, valyent.toml, a --config file and flags, checked against the
contract before anything is sent."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from valyent_cli.cli import validate as v
from valyent_cli.cli.errors import UsageError

DEFAULT_REGION = "gra-1"
DEFAULT_CPU_KIND = "shared"
DEFAULT_CPUS = 1
DEFAULT_MEMORY_MB = 512

#: the payload's shape, as the contract has it: key -> nested shape, or None for a leaf
SCHEMA: dict[str, Any] = {
    "region": None,
    "skip_start": None,
    "enable_machine_gateway": None,
    "config": {
        "image": None,
        "auto_destroy": None,  # the seed README's place for it; moved into workload
        "guest": {"cpu_kind": None, "memory_mb": None, "cpus": None},
        "workload": {
            "env": None,
            "restart": {"policy": None, "max_retries": None},
            "init": {"cmd": None, "entrypoint": None, "user": None},
            "auto_destroy": None,
        },
        "stop_config": {"timeout": None, "signal": None},
    },
}

@dataclass
class CreateFlags:
    image: str | None = None
    region: str | None = None
    cpus: int | None = None
    memory: str | None = None
    cpu_kind: str | None = None
    env: list[str] = field(default_factory=list)
    env_file: str | None = None
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    user: str | None = None
    restart: str | None = None
    max_retries: int | None = None
    auto_destroy: bool | None = None
    skip_start: bool | None = None
    stop_signal: str | None = None
    stop_timeout: int | None = None
    enable_gateway: bool | None = None


def check_keys(data: Any, schema: dict[str, Any], where: str, source: str) -> None:
    """Unknown keys are named, with where they were found."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: {where or 'the payload'} must be an object")
    for key, value in data.items():
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise UsageError(f"{source}: unknown key {(where + '.' if where else '') + key!r} (known here: {known})")
        sub = schema[key]
        if sub is not None and value is not None:
            check_keys(value, sub, f"{where}.{key}" if where else key, source)


def _project_defaults(machine: dict[str, Any], project_region: str | None, source: str) -> dict[str, Any]:
    """A payload fragment from valyent.toml's [machine] table, as ``config.Settings.machine_defaults`` gives it
    (config checked its keys and types when it read the file, and made env and commands lists)."""
    memory = machine.get("memory", machine.get("memory_mb"))
    flags = CreateFlags(
        image=machine.get("image"), region=machine.get("region") or project_region, cpus=machine.get("cpus"),
        memory=None if memory is None else str(memory), cpu_kind=machine.get("cpu_kind"),
        env=list(machine.get("env") or []), cmd=machine.get("cmd"), entrypoint=machine.get("entrypoint"),
        user=machine.get("user"), restart=machine.get("restart"), max_retries=machine.get("max_retries"),
        auto_destroy=machine.get("auto_destroy"), skip_start=machine.get("skip_start"),
        stop_signal=machine.get("stop_signal"), stop_timeout=machine.get("stop_timeout"),
        enable_gateway=machine.get("enable_gateway"),
    )
    return apply_flags({}, flags, source=source)


def build(
    flags: CreateFlags,
    *,
    config_file: str | None = None,
    machine_defaults: dict[str, Any] | None = None,
    project_region: str | None = None,
    project_source: str = "valyent.toml",
    default_region: str | None = None,
) -> dict[str, Any]:
    """The create payload: built-in defaults < valyent.toml [machine] < --config file < flags."""
    payload: dict[str, Any] = {}
    if machine_defaults or project_region:
        payload = _project_defaults(machine_defaults or {}, project_region, project_source)
    if config_file:
        data = v.load_payload_file(config_file)
        check_keys(data, SCHEMA, "", f"--config {config_file}")
        payload = merge(payload, data)
    payload = apply_flags(payload, flags, source=None)
    payload.setdefault("region", default_region or DEFAULT_REGION)
    config = payload.setdefault("config", {})
    guest = config.setdefault("guest", {})
    guest.setdefault("cpu_kind", DEFAULT_CPU_KIND)
    guest.setdefault("cpus", DEFAULT_CPUS)
    guest.setdefault("memory_mb", DEFAULT_MEMORY_MB)
    if "auto_destroy" in config:  # the seed README's place; on the wire it lives in workload
        config.setdefault("workload", {}).setdefault("auto_destroy", config.pop("auto_destroy"))
    if not isinstance(payload["config"].get("image"), str):
        where = f" or in {config_file}" if config_file else ""
        raise UsageError(f"--image is required (or set `image` in valyent.toml's [machine] table{where})")
    check(payload, f"--config {config_file}" if config_file else "the machine payload")
    order = ("region", "config", "skip_start", "enable_machine_gateway")
    return {key: payload[key] for key in order if key in payload}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def apply_flags(payload: dict[str, Any], f: CreateFlags, *, source: str | None) -> dict[str, Any]:
    """Lay the flags over a payload. With ``source`` (a file), errors name the file instead of the flag."""

    def name(flag: str, key: str) -> str:
        return f"{source}: machine.{key}" if source else flag

    p = copy.deepcopy(payload)
    config = p.setdefault("config", {})
    if f.image is not None:
        image = v.name(str(f.image), name("--image", "image")).strip()
        if not image or any(ch.isspace() for ch in image):
            raise UsageError(f"{name('--image', 'image')}: invalid image reference {f.image!r}")
        config["image"] = image
    if f.region is not None:
        region = v.name(str(f.region), name("--region", "region")).strip()
        if not region:
            raise UsageError(f"{name('--region', 'region')} must not be empty")
        p["region"] = region
    guest = config.setdefault("guest", {})
    if f.cpus is not None:
        guest["cpus"] = _int(f.cpus, name("--cpus", "cpus"), minimum=1, maximum=64)
    if f.memory is not None:
        guest["memory_mb"] = v.size_mb(str(f.memory), name("--memory", "memory"))
    if f.cpu_kind is not None:
        kind = v.text(str(f.cpu_kind), name("--cpu-kind", "cpu_kind")).strip()
        if not kind or not kind.replace("-", "").replace("_", "").isalnum():
            raise UsageError(f"{name('--cpu-kind', 'cpu_kind')}: invalid cpu kind {f.cpu_kind!r}")
        guest["cpu_kind"] = kind
    if not guest:
        config.pop("guest")
    workload = config.setdefault("workload", {})
    env = list(v.env_file(f.env_file) if f.env_file else []) + [v.env_pair(str(e), name("--env", "env")) for e in f.env]
    if env:
        merged: dict[str, str] = {}
        for item in list(workload.get("env") or []) + env:
            key, _, value = str(item).partition("=")
            merged[key] = value
        workload["env"] = [f"{k}={val}" for k, val in merged.items()]
    init = workload.setdefault("init", {})
    if f.cmd is not None:
        init["cmd"] = _argv(f.cmd, name("--cmd", "cmd"))
    if f.entrypoint is not None:
        init["entrypoint"] = _argv(f.entrypoint, name("--entrypoint", "entrypoint"))
    if f.user is not None:
        user = v.name(str(f.user), name("--user", "user")).strip()
        if not user:
            raise UsageError(f"{name('--user', 'user')} must not be empty")
        init["user"] = user
    if not init:
        workload.pop("init")
    restart = workload.setdefault("restart", {})
    if f.restart is not None:
        restart["policy"] = v.choice(str(f.restart), name("--restart", "restart"), v.RESTART_POLICIES)
    if f.max_retries is not None:
        restart["max_retries"] = _int(f.max_retries, name("--max-retries", "max_retries"), minimum=0, maximum=1000)
    if not restart:
        workload.pop("restart")
    if f.auto_destroy is not None:
        workload["auto_destroy"] = bool(f.auto_destroy)
    if not workload:
        config.pop("workload")
    stop = config.setdefault("stop_config", {})
    if f.stop_signal is not None:
        stop["signal"] = v.signal_name(str(f.stop_signal), name("--stop-signal", "stop_signal"))
    if f.stop_timeout is not None:
        stop["timeout"] = _int(f.stop_timeout, name("--stop-timeout", "stop_timeout"), minimum=0, maximum=30)
    if not stop:
        config.pop("stop_config")
    if not config:
        p.pop("config")
    if f.skip_start is not None:
        p["skip_start"] = bool(f.skip_start)
    if f.enable_gateway is not None:
        p["enable_machine_gateway"] = bool(f.enable_gateway)
    return p


def _check_text(value: Any, where: str, source: str) -> None:
    """Every string must go on the wire: a JSON file can spell lone surrogates ("\\ud800") and NUL characters."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_text(item, f"{where}.{key}" if where else str(key), source)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, f"{where}[{index}]", source)
    elif isinstance(value, str) and ("\x00" in value or any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)):
        raise UsageError(f"{source}: {where} is not valid UTF-8 text")


def _int(value: Any, flag: str, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{flag} must be a whole number, not {value!r}")
    return v.positive_int(value, flag, minimum=minimum, maximum=maximum)  # type: ignore[return-value]


def _argv(value: Any, flag: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(x, str) for x in value):
        raise UsageError(f"{flag} must be a non-empty list of strings")
    return [v.text(x, flag) for x in value]


def check(payload: dict[str, Any], source: str) -> None:
    """What the contract requires of a create payload, whatever it was built from."""
    check_keys(payload, SCHEMA, "", source)
    _check_text(payload, "", source)

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise UsageError(f"{source}: {message}")

    need(isinstance(payload.get("region"), str) and payload["region"].strip() != "", "region must be a non-empty string")
    config = payload.get("config")
    need(isinstance(config, dict), "config is required")
    image = config.get("image")
    need(isinstance(image, str) and image.strip() != "", "config.image is required")
    from valyent_cli.cli.sanitize import has_control

    # Names are shown back on terminals: a control character in one is refused before it is stored anywhere.
    for where, value in _names(payload):
        need(not (isinstance(value, str) and has_control(value)), f"{where} must not contain control characters")
    guest = config.get("guest")
    need(isinstance(guest, dict), "config.guest is required")
    need(isinstance(guest.get("cpu_kind"), str) and guest["cpu_kind"] != "", "config.guest.cpu_kind is required")
    for key in ("memory_mb", "cpus"):
        value = guest.get(key)
        need(isinstance(value, int) and not isinstance(value, bool) and value >= 1, f"config.guest.{key} must be a whole number >= 1")
    workload = config.get("workload") or {}
    need(isinstance(workload, dict), "config.workload must be an object")
    env = workload.get("env")
    if env is not None:
        need(isinstance(env, list) and all(isinstance(e, str) and "=" in e for e in env), "config.workload.env must be a list of KEY=VALUE strings")
    restart = workload.get("restart")
    if restart is not None:
        policy = restart.get("policy")
        need(policy is None or policy in v.RESTART_POLICIES, f"config.workload.restart.policy must be one of {', '.join(v.RESTART_POLICIES)}")
        retries = restart.get("max_retries")
        need(retries is None or (isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0), "config.workload.restart.max_retries must be a whole number >= 0")
    init = workload.get("init")
    if init is not None:
        for key in ("cmd", "entrypoint"):
            value = init.get(key)
            need(value is None or (isinstance(value, list) and all(isinstance(x, str) for x in value)), f"config.workload.init.{key} must be a list of strings")
        need(init.get("user") is None or isinstance(init.get("user"), str), "config.workload.init.user must be a string")
    if "auto_destroy" in workload:
        need(isinstance(workload["auto_destroy"], bool), "config.workload.auto_destroy must be true or false")
    stop = config.get("stop_config")
    if stop is not None:
        timeout = stop.get("timeout")
        need(timeout is None or (isinstance(timeout, int) and not isinstance(timeout, bool) and 0 <= timeout <= 30), "config.stop_config.timeout must be whole seconds from 0 to 30")
        signal = stop.get("signal")
        need(signal is None or signal in v.SIGNALS, f"config.stop_config.signal must be one of {', '.join(v.SIGNALS)}")
    for key in ("skip_start", "enable_machine_gateway"):
        if key in payload:
            need(isinstance(payload[key], bool), f"{key} must be true or false")


def _names(payload: dict[str, Any]) -> list[tuple[str, Any]]:
    """The names in a create payload (region, image, cpu kind, user), where present."""

    def at(*keys: str) -> Any:
        value: Any = payload
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    return [("region", at("region")), ("config.image", at("config", "image")),
            ("config.guest.cpu_kind", at("config", "guest", "cpu_kind")),
            ("config.workload.init.user", at("config", "workload", "init", "user"))]
