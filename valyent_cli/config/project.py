"""The project file, valyent.toml: its keys, its [machine] table, and the machine defaults taken from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from valyent_cli.config.errors import ConfigError
from valyent_cli.config.keys import BUILD_KEYS, DEPLOY_KEYS, ENV_ENDPOINT, MACHINE_KEYS, PROJECT_FORBIDDEN, PROJECT_KEYS
from valyent_cli.config.toml import _key_line, _read_toml
from valyent_cli.config.values import _check_word


def _check_machine(path: Path, table: Any) -> None:
    def bad(key: str, expected: str) -> ConfigError:
        return ConfigError(path, _key_line(path, key, "machine"), f"[machine] {key} must be {expected}")

    if not isinstance(table, dict):
        raise ConfigError(path, _key_line(path, "machine"), "`machine` must be a table: [machine]")
    for key, value in table.items():
        if key not in MACHINE_KEYS:
            raise ConfigError(
                path,
                _key_line(path, key, "machine"),
                f"unknown key {key!r} in [machine]; valid keys: {', '.join(MACHINE_KEYS)}",
            )
        expected = MACHINE_KEYS[key]
        if key in ("image", "region", "cpu_kind", "user", "stop_signal"):
            ok = isinstance(value, str) and bool(value.strip())
        elif key == "memory" and isinstance(value, str):
            ok = bool(value.strip())  # a size such as "1gb": `machines create` parses it like --memory
        elif key in ("cpus", "memory", "memory_mb"):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        elif key == "max_retries":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        elif key == "stop_timeout":  # 10 or "10s", as --stop-timeout
            ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or (
                isinstance(value, str) and bool(value.strip()))
        elif key in ("auto_destroy", "skip_start", "enable_gateway"):
            ok = isinstance(value, bool)
        elif key == "restart":
            ok = value in ("always", "on-failure", "never")
        elif key in ("secrets", "volumes", "networks"):
            ok = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
        elif key in ("health_interval", "health_timeout"):
            ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 1) or (
                isinstance(value, str) and bool(value.strip()))
        elif key == "health_retries":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        elif key in ("labels", "annotations"):
            ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        elif key == "env":
            ok = (isinstance(value, list) and all(isinstance(v, str) and "=" in v for v in value)) or (
                isinstance(value, dict) and all(isinstance(v, (str, int, float, bool)) for v in value.values())
            )
        else:  # cmd, entrypoint, health_cmd
            ok = isinstance(value, str) and _splits(value) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
        if not ok:
            raise bad(key, expected)


def _check_table(path: Path, name: str, table: Any) -> None:
    """[deploy] and [build]: known keys of the right types (apps/spec.py checks what the values mean)."""
    keys = DEPLOY_KEYS if name == "deploy" else BUILD_KEYS
    if not isinstance(table, dict):
        raise ConfigError(path, _key_line(path, name), f"`{name}` must be a table: [{name}]")
    for key, value in table.items():
        if key not in keys:
            raise ConfigError(path, _key_line(path, key, name),
                              f"unknown key {key!r} in [{name}]; valid keys: {', '.join(keys)}")
        whole = isinstance(value, int) and not isinstance(value, bool)
        if key == "count":
            ok = whole and value >= 1
        elif key in ("max_unavailable", "wait_timeout"):
            ok = (whole and value >= 1) or (isinstance(value, str) and bool(value.strip()))
        elif key == "release_command":
            ok = (isinstance(value, str) and _splits(value)) or (
                isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value))
        else:
            ok = isinstance(value, str) and bool(value.strip())
        if not ok:
            raise ConfigError(path, _key_line(path, key, name), f"[{name}] {key} must be {keys[key]}")


def _splits(command: str) -> bool:
    """Whether a command string splits like a shell line (no unclosed quote) into at least one word."""
    import shlex

    try:
        return bool(shlex.split(command))
    except ValueError:
        return False


def load_project(path: Path) -> dict[str, Any]:
    """Parse and check a valyent.toml. ConfigError naming the file (and line) when it is not right."""
    doc = _read_toml(path) or {}
    for key, value in doc.items():
        if key in PROJECT_FORBIDDEN:
            raise ConfigError(
                path,
                _key_line(path, key),
                f"`{key}` is not allowed in a project file (a cloned repository must not choose where your token "
                f"goes); set it in a profile or with {ENV_ENDPOINT}/--endpoint",
            )
        if key not in PROJECT_KEYS:
            raise ConfigError(
                path, _key_line(path, key), f"unknown key {key!r}; valid keys: {', '.join(PROJECT_KEYS)}"
            )
        if key == "machine":
            _check_machine(path, value)
        elif key in ("deploy", "build"):
            _check_table(path, key, value)
        else:
            try:
                _check_word(value, key)
            except ValueError as exc:
                raise ConfigError(path, _key_line(path, key), str(exc)) from None
    return doc


def machine_defaults(project: Mapping[str, Any]) -> dict[str, Any]:
    """The [machine] table normalised for `machines create`: env as ["K=V", ...], cmd/entrypoint as lists."""
    import shlex

    table = dict(project.get("machine") or {})
    env = table.get("env")
    if isinstance(env, dict):
        table["env"] = [f"{k}={_env_value(v)}" for k, v in env.items()]
    for key in ("cmd", "entrypoint", "health_cmd"):
        if isinstance(table.get(key), str):
            table[key] = shlex.split(table[key])
    return table


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
