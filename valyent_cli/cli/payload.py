"""The machine create payload: built from defaults, valyent.toml, a --config file and flags, checked against the
contract before anything is sent."""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from valyent_cli.cli import metadata as _meta
from valyent_cli.cli import validate as v
from valyent_cli.cli.errors import UsageError
from valyent_cli.defaults import DEFAULT_CPU_KIND, DEFAULT_CPUS, DEFAULT_MEMORY_MB, DEFAULT_REGION

if TYPE_CHECKING:
    from valyent_cli.config import Settings

_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: the payload's shape, as the contract has it: key -> nested shape, or None for a leaf
SCHEMA: dict[str, Any] = {
    "region": None,
    "skip_start": None,
    "enable_machine_gateway": None,
    "metadata": {"labels": None, "annotations": None},
    "config": {
        "image": None,
        "auto_destroy": None,  # the seed README's place for it; moved into workload
        "guest": {"cpu_kind": None, "memory_mb": None, "cpus": None},
        "workload": {
            "env": None,
            "restart": {"policy": None, "max_retries": None},
            "init": {"cmd": None, "entrypoint": None, "user": None},
            "auto_destroy": None,
            # Ravel's api/machines.go Workload
            "secrets": None,
            "volumes": None,
            "health_check": {"exec": None, "interval": None, "timeout": None, "retries": None},
            "private_networks": None,
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
    stop_timeout: str | int | None = None
    enable_gateway: bool | None = None
    secrets: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    health_cmd: list[str] | None = None
    health_interval: str | int | None = None
    health_timeout: str | int | None = None
    health_retries: int | None = None
    labels: list[str] = field(default_factory=list)
    annotations: list[str] = field(default_factory=list)


#: the parameters of `machines create` (and `machines run`) that make a :class:`CreateFlags`, by their names there
FLAG_PARAMS: tuple[str, ...] = (
    "command", "image", "region", "cpus", "memory", "cpu_kind", "env", "env_file", "cmd", "entrypoint", "user",
    "restart", "max_retries", "auto_destroy", "skip_start", "stop_signal", "stop_timeout", "enable_gateway", "secret",
    "health_cmd", "health_interval", "health_timeout", "health_retries", "volume", "network", "label", "annotation",
)


def create_flags(options: Mapping[str, Any]) -> CreateFlags:
    """The flags of `machines create`/`run` (their parameters by name, see :data:`FLAG_PARAMS`; missing ones are
    unset) as :class:`CreateFlags`: a command after `--` or --cmd (not both), commands split like a shell."""
    o = {name: options.get(name) for name in FLAG_PARAMS}
    command, cmd, entrypoint = o["command"], o["cmd"], o["entrypoint"]
    if command and cmd is not None:
        raise UsageError("give the command either after `--` or with --cmd, not both")
    return CreateFlags(
        image=o["image"], region=o["region"], cpus=o["cpus"], memory=o["memory"], cpu_kind=o["cpu_kind"],
        env=list(o["env"] or []), env_file=o["env_file"],
        cmd=list(command) if command else (v.command_line(cmd) if cmd is not None else None),
        entrypoint=v.command_line(entrypoint, "--entrypoint") if entrypoint is not None else None, user=o["user"],
        restart=o["restart"], max_retries=o["max_retries"], auto_destroy=o["auto_destroy"],
        skip_start=o["skip_start"], stop_signal=o["stop_signal"], stop_timeout=o["stop_timeout"],
        enable_gateway=o["enable_gateway"], secrets=list(o["secret"] or []), volumes=list(o["volume"] or []),
        networks=list(o["network"] or []), health_cmd=o["health_cmd"], health_interval=o["health_interval"],
        health_timeout=o["health_timeout"], health_retries=o["health_retries"], labels=list(o["label"] or []),
        annotations=list(o["annotation"] or []),
    )


def machine_payload(settings: Settings, flags: CreateFlags, *, config_file: str | None = None,
                    region_fallback: Any = None) -> dict[str, Any]:
    """THE create payload of `machines create`, `machines run` and `deploy`: the settings' defaults (profile,
    environment) < valyent.toml's [machine] table < the ``--config`` file < the flags, checked (:func:`build`).
    ``region_fallback`` as for :func:`build` (`cli/endpoint.default_region` on a self-hosted Ravel)."""
    project_source = str(settings.project_path) if settings.project_path else "valyent.toml"
    return build(
        flags, config_file=config_file, machine_defaults=settings.machine_defaults,
        project_region=settings.project.get("region"), project_source=project_source,
        default_region=settings.region, default_cpu_kind=settings.cpu_kind,
        env_cpu_kind=settings.cpu_kind if settings.sources.get("cpu_kind") == "environment" else None,
        region_fallback=region_fallback,
    )


def app_payload(app_: Any, flags: CreateFlags, *, config_file: str | None = None,
                ask_nodes: bool = True) -> dict[str, Any]:
    """:func:`machine_payload` for a command: with no region configured, a self-hosted Ravel's region comes from its
    nodes (`cli/endpoint.default_region`, one request, only then; not when ``ask_nodes`` is false, as for
    `--dry-run`)."""
    from valyent_cli.cli import endpoint

    return machine_payload(app_.settings, flags, config_file=config_file,
                           region_fallback=(lambda: endpoint.default_region(app_)) if ask_nodes else None)


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
        enable_gateway=machine.get("enable_gateway"), secrets=list(machine.get("secrets") or []),
        volumes=list(machine.get("volumes") or []), networks=list(machine.get("networks") or []),
        health_cmd=machine.get("health_cmd"), health_interval=machine.get("health_interval"),
        health_timeout=machine.get("health_timeout"), health_retries=machine.get("health_retries"),
        labels=[f"{k}={val}" for k, val in (machine.get("labels") or {}).items()],
        annotations=[f"{k}={val}" for k, val in (machine.get("annotations") or {}).items()],
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
    default_cpu_kind: str | None = None,
    env_cpu_kind: str | None = None,
    region_fallback: Any = None,
) -> dict[str, Any]:
    """The create payload: built-in defaults < valyent.toml [machine] < --config file < flags.

    ``region_fallback()``, when given, is the region where none is set (instead of DEFAULT_REGION): called only
    then (cli/endpoint.py: default_region asks a self-hosted Ravel's nodes)."""
    payload: dict[str, Any] = {}
    if machine_defaults or project_region:
        payload = _project_defaults(machine_defaults or {}, project_region, project_source)
    if env_cpu_kind:  # the environment comes before the project file
        payload.setdefault("config", {}).setdefault("guest", {})["cpu_kind"] = env_cpu_kind
    if config_file:
        data = v.load_payload_file(config_file)
        check_keys(data, SCHEMA, "", f"--config {config_file}")
        payload = merge(payload, data)
    payload = apply_flags(payload, flags, source=None)
    ask_region = "region" not in payload and not default_region and region_fallback is not None
    payload.setdefault("region", default_region or DEFAULT_REGION)
    config = payload.setdefault("config", {})
    guest = config.setdefault("guest", {})
    guest.setdefault("cpu_kind", default_cpu_kind or DEFAULT_CPU_KIND)
    guest.setdefault("cpus", DEFAULT_CPUS)
    guest.setdefault("memory_mb", DEFAULT_MEMORY_MB)
    if "auto_destroy" in config:  # the seed README's place; on the wire it lives in workload
        config.setdefault("workload", {}).setdefault("auto_destroy", config.pop("auto_destroy"))
    if not isinstance(payload["config"].get("image"), str):
        where = f" or in {config_file}" if config_file else ""
        raise UsageError(f"--image is required (or set `image` in valyent.toml's [machine] table{where})")
    check(payload, f"--config {config_file}" if config_file else "the machine payload")
    if ask_region:  # last: bad input is refused before this request
        payload["region"] = region_fallback()
    order = ("region", "config", "skip_start", "enable_machine_gateway", "metadata")
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
    _workload_extras(workload, f, name)
    if not workload:
        config.pop("workload")
    stop = config.setdefault("stop_config", {})
    if f.stop_signal is not None:
        stop["signal"] = v.signal_name(str(f.stop_signal), name("--stop-signal", "stop_signal"))
    if f.stop_timeout is not None:
        stop["timeout"] = v.whole_seconds(f.stop_timeout, name("--stop-timeout", "stop_timeout"), minimum=0, maximum=30)
    if not stop:
        config.pop("stop_config")
    if not config:
        p.pop("config")
    labels = _meta.pairs([str(x) for x in f.labels], name("--label", "labels"), "label") if f.labels else {}
    annotations = (_meta.pairs([str(x) for x in f.annotations], name("--annotation", "annotations"), "annotation")
                   if f.annotations else {})
    if labels or annotations:
        metadata = p.setdefault("metadata", {})
        if labels:
            metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
            _meta.check_count(metadata["labels"], name("--label", "labels"), "label")
        if annotations:
            metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
            _meta.check_count(metadata["annotations"], name("--annotation", "annotations"), "annotation")
    if f.skip_start is not None:
        p["skip_start"] = bool(f.skip_start)
    if f.enable_gateway is not None:
        p["enable_machine_gateway"] = bool(f.enable_gateway)
    return p


def parse_secret(value: str, flag: str) -> dict[str, str]:
    """``NAME:ENV_VAR`` (a secret of the namespace, and the variable it becomes)."""
    name, sep, env_var = v.text(str(value), flag).partition(":")
    if not sep or not _SECRET_NAME.match(name) or not _ENV_VAR.match(env_var):
        raise UsageError(f"{flag}: {str(value)[:80]!r} is not NAME:ENV_VAR (a secret name such as db-password, then "
                         "a variable name such as DB_PASSWORD)")
    return {"name": name, "env_var": env_var}


def parse_volume(value: str, flag: str) -> dict[str, str]:
    """``NAME:PATH`` (a disk, and where it is mounted in the machine)."""
    name, sep, path = v.text(str(value), flag).partition(":")
    if not sep or not name.strip() or not path.startswith("/"):
        raise UsageError(f"{flag}: {str(value)[:80]!r} is not NAME:PATH with an absolute PATH (e.g. data:/var/lib/data)")
    if not path.strip("/."):  # `/`, `//`, `/.`: a volume over the machine's whole root (issue 28 item 11)
        raise UsageError(f"{flag}: {str(value)[:80]!r}: a volume cannot be mounted at / (choose a directory, e.g. "
                         "data:/var/lib/data)")
    if ":" in path:  # engines read PATH:OPTIONS (issue 27 item 18)
        raise UsageError(f"{flag}: {str(value)[:80]!r}: the PATH holds ':', which is not allowed (no mount options)")
    return {"name": name, "path": path}


def parse_network(value: str, flag: str) -> dict[str, str]:
    """``NAME=IP/PREFIX`` (a private network, and this machine's address in it, e.g. ``backend=10.0.1.2/24``)."""
    import ipaddress

    name, sep, ip = v.text(str(value), flag).partition("=")
    if not sep or not name.strip() or "/" not in ip:
        raise UsageError(f"{flag}: {str(value)[:80]!r} is not NAME=IP/PREFIX (e.g. backend=10.0.1.2/24)")
    try:
        interface = ipaddress.ip_interface(ip)
    except ValueError:
        raise UsageError(f"{flag}: {ip!r} is not an IP address with a prefix length (e.g. 10.0.1.2/24)") from None
    return {"name": name, "ip": str(interface)}


def _whole_seconds(value: Any, flag: str) -> int:
    if isinstance(value, bool):
        raise UsageError(f"{flag} must be a duration such as 30s or 1m")
    seconds = float(value) if isinstance(value, (int, float)) else v.duration(str(value), flag)
    if seconds < 1:
        raise UsageError(f"{flag} must be at least 1 second")
    return int(math.ceil(seconds))


def _workload_extras(workload: dict[str, Any], f: CreateFlags, name: Any) -> None:
    """Ravel's workload lists and health check, from the flags (or a [machine] table)."""
    if f.secrets:
        refs = {r["env_var"]: r for r in workload.get("secrets") or [] if isinstance(r, dict)}
        for item in f.secrets:
            ref = item if isinstance(item, dict) else parse_secret(item, name("--secret", "secrets"))
            refs[ref.get("env_var")] = ref
        workload["secrets"] = list(refs.values())
    if f.volumes:
        workload["volumes"] = list(workload.get("volumes") or []) + [
            item if isinstance(item, dict) else parse_volume(item, name("--volume", "volumes")) for item in f.volumes]
    if f.networks:
        workload["private_networks"] = list(workload.get("private_networks") or []) + [
            item if isinstance(item, dict) else parse_network(item, name("--network", "networks")) for item in f.networks]
    health = dict(workload.get("health_check") or {})
    if f.health_cmd is not None:
        cmd = f.health_cmd
        health["exec"] = _argv(v.command_line(cmd, name("--health-cmd", "health_cmd")) if isinstance(cmd, str) else cmd,
                               name("--health-cmd", "health_cmd"))
    if f.health_interval is not None:
        health["interval"] = _whole_seconds(f.health_interval, name("--health-interval", "health_interval"))
    if f.health_timeout is not None:
        health["timeout"] = _whole_seconds(f.health_timeout, name("--health-timeout", "health_timeout"))
    if f.health_retries is not None:
        health["retries"] = _int(f.health_retries, name("--health-retries", "health_retries"), minimum=1, maximum=1000)
    if health:
        if not health.get("exec"):
            raise UsageError(f"{name('--health-cmd', 'health_cmd')} is needed with the other health check settings")
        workload["health_check"] = health


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

    def records(key: str, fields: tuple[str, ...]) -> list[dict[str, Any]]:
        items = workload.get(key)
        if items is None:
            return []
        need(isinstance(items, list) and all(isinstance(i, dict) and set(i) <= set(fields)
                                             and all(isinstance(i.get(f), str) and i.get(f) for f in fields)
                                             for i in items),
             f"config.workload.{key} must be a list of {{{', '.join(fields)}}} objects of strings")
        return items

    for ref in records("secrets", ("name", "env_var")):
        need(bool(_SECRET_NAME.match(ref["name"])) and bool(_ENV_VAR.match(ref["env_var"])),
             f"config.workload.secrets: invalid reference {ref['name']}:{ref['env_var']}")
    for volume in records("volumes", ("name", "path")):
        need(volume["path"].startswith("/"), f"config.workload.volumes: {volume['path']!r} is not an absolute path")
    for net in records("private_networks", ("name", "ip")):
        try:
            import ipaddress

            ipaddress.ip_interface(net["ip"])
            ok = "/" in net["ip"]
        except ValueError:
            ok = False
        need(ok, f"config.workload.private_networks: {net['ip']!r} is not an IP address with a prefix (10.0.1.2/24)")
    health = workload.get("health_check")
    if health is not None:
        need(isinstance(health, dict) and isinstance(health.get("exec"), list) and bool(health["exec"])
             and all(isinstance(x, str) for x in health["exec"]),
             "config.workload.health_check.exec must be a non-empty list of strings")
        for key in ("interval", "timeout", "retries"):
            value = health.get(key)
            need(value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1),
                 f"config.workload.health_check.{key} must be a whole number >= 1")
    metadata = payload.get("metadata")
    if metadata is not None:
        need(isinstance(metadata, dict), "metadata must be an object")
        for kind, key in (("label", "labels"), ("annotation", "annotations")):
            items = metadata.get(key)
            if items is None:
                continue
            need(isinstance(items, dict) and all(isinstance(x, str) for x in items.values()),
                 f"metadata.{key} must be a table of strings")
            _meta.pairs([f"{k}={val}" for k, val in items.items()], f"{source}: metadata.{key}", kind)


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
