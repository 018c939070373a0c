"""Profile operations used by the commands (and by `valyent local`). Each change is one locked read-modify-write
of config.toml (:class:`~valyent_cli.config.store.ConfigStore`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from valyent_cli.config.errors import ConfigError
from valyent_cli.config.keys import DEFAULT, ENV_PROFILE, ENVIRONMENT, FLAG, PROFILE, _env
from valyent_cli.config.store import ConfigStore
from valyent_cli.config.values import check_key, check_profile_name, check_profile_value, check_token
from valyent_cli.defaults import DEFAULT_LOCAL_FLEET, LOCAL_PROFILE


def _usage(exc: ValueError, path: Path | None = None) -> ConfigError:
    return ConfigError(str(exc), path=path)


def _existing(doc: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    profiles = doc.get("profiles", {})
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none yet; create one with `valyent profiles create NAME`"
        raise ConfigError(f"no profile named {name!r} in {path} (profiles: {known})")
    return profiles[name]


def list_profiles() -> tuple[str | None, dict[str, dict[str, Any]]]:
    """(active profile name, {name: table}) as stored."""
    doc = ConfigStore().load()
    return doc.get("active"), doc.get("profiles", {})


def get_profile(name: str) -> dict[str, Any]:
    store = ConfigStore()
    return dict(_existing(store.load(), name, store.path))


def create_profile(name: str, values: Mapping[str, Any], *, activate: bool = False) -> bool:
    """Create a profile; make it active when asked or when no profile is active. Returns whether it is active."""
    try:
        check_profile_name(name)
        clean = {key: check_profile_value(key, value) for key, value in values.items() if value is not None}
    except ValueError as exc:
        raise _usage(exc) from None
    store = ConfigStore()
    with store.edit() as doc:
        profiles = doc.setdefault("profiles", {})
        if name in profiles:
            raise ConfigError(
                f"profile {name!r} already exists; change it with `valyent profiles set KEY VALUE --profile {name}`"
            )
        profiles[name] = clean
        if activate or not doc.get("active") or doc.get("active") not in profiles:
            doc["active"] = name
            return True
        return False


def delete_profile(name: str) -> bool:
    """Delete a profile. Returns True when it was the active one (no profile is active afterwards)."""
    store = ConfigStore()
    with store.edit() as doc:
        _existing(doc, name, store.path)
        del doc["profiles"][name]
        if doc.get("active") == name:
            del doc["active"]
            return True
        return False


def use_profile(name: str) -> None:
    set_active(name)


def set_active(name: str | None) -> None:
    """Make ``name`` the active profile, or leave none active (None)."""
    store = ConfigStore()
    with store.edit() as doc:
        if name is None:
            doc.pop("active", None)
        else:
            _existing(doc, name, store.path)
            doc["active"] = name


def set_profile_value(profile: str, key: str, value: Any) -> None:
    """Set one key of an existing profile (validated, strings coerced); ``value=None`` removes the key."""
    if value is None:
        unset_profile_value(profile, key)
        return
    try:
        check_key(key)
        value = check_profile_value(key, value)
    except ValueError as exc:
        raise _usage(exc) from None
    store = ConfigStore()
    with store.edit() as doc:
        _existing(doc, profile, store.path)[key] = value


def unset_profile_value(profile: str, key: str) -> bool:
    """Remove one key from a profile. Returns whether it was set."""
    try:
        check_key(key)
    except ValueError as exc:
        raise _usage(exc) from None
    store = ConfigStore()
    with store.edit() as doc:
        table = _existing(doc, profile, store.path)
        return table.pop(key, None) is not None


def save_login(profile: str, token: str, **values: Any) -> bool:
    """Store a checked token (and endpoint/namespace) in a profile, creating it if needed. Returns whether it
    became the active profile (it does when no profile is active)."""
    try:
        check_profile_name(profile)
        clean = {key: check_profile_value(key, value) for key, value in values.items() if value is not None}
        clean["token"] = check_token(token)
    except ValueError as exc:
        raise _usage(exc) from None
    store = ConfigStore()
    with store.edit() as doc:
        profiles = doc.setdefault("profiles", {})
        profiles.setdefault(profile, {}).update(clean)
        if not doc.get("active") or doc["active"] not in profiles:
            doc["active"] = profile
            return True
        return False


def save_local_profile(
    endpoint: str, token: str, initd_endpoint: str, fleet: str = DEFAULT_LOCAL_FLEET, activate: bool = True,
    data_dir: str | None = None,
    namespace: str | None = None,
    name: str = LOCAL_PROFILE,
) -> str | None:
    """Write (or refresh) the ``local`` profile (or ``name``, for a second sandbox) for the sandbox. Returns the
    profile that was active before, so that ``valyent local stop`` can switch back to it. Other keys of an
    existing local profile are kept."""
    try:
        clean = {
            "endpoint": check_profile_value("endpoint", endpoint),
            "token": check_token(token),
            "initd_endpoint": check_profile_value("initd_endpoint", initd_endpoint),
            "fleet": check_profile_value("fleet", fleet),
            "local": True,
        }
        if data_dir is not None:
            clean["data_dir"] = check_profile_value("data_dir", data_dir)
        if namespace:  # the sandbox's own: namespace-scoped commands (secrets) work without flags
            clean["namespace"] = check_profile_value("namespace", namespace)
    except ValueError as exc:
        raise _usage(exc) from None
    store = ConfigStore()
    with store.edit() as doc:
        previous = doc.get("active")
        doc.setdefault("profiles", {}).setdefault(name, {}).update(clean)
        if activate:
            doc["active"] = name
        return previous


def selected_profile(flag: str | None = None) -> tuple[str | None, str]:
    """The profile a command addresses and where that choice came from: --profile ("flag"), $VALYENT_PROFILE
    ("environment"), the file's ``active`` marker ("profile"), or none ("default")."""
    return selected_profile_from(ConfigStore().load(), flag)


def selected_profile_from(doc: Mapping[str, Any], flag: str | None) -> tuple[str | None, str]:
    if flag:
        return flag, FLAG
    env = _env(ENV_PROFILE)
    if env:
        return env, ENVIRONMENT
    if doc.get("active"):
        return doc["active"], PROFILE
    return None, DEFAULT
