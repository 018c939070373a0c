"""Checks of single values (URLs, words, files, booleans, timeouts, tokens, profile names and keys), the token's
safe forms (fingerprint, mask), and what counts as a loopback host (the plain-http rule that uses it,
:func:`~valyent_cli.config.settings.check_transport_safety`, checks resolved settings)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from valyent_cli.config.keys import AUTH_SCHEMES, PROFILE_KEYS, SETTABLE_KEYS
from valyent_cli.defaults import DEFAULT_INITD_ENDPOINT

_PROFILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"  # compiled by `re` on first use
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def fingerprint(token: str) -> str:
    """A short, stable, non-reversible id of a token (first 8 hex chars of its SHA-256), safe to show."""
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()[:8]


def mask_token(token: str | None) -> str | None:
    """``vly_…abcd``: a short known prefix and the last 4 characters, only for tokens long enough to spare them."""
    if token is None:
        return None
    if len(token) < 12:
        return "…"
    prefix = ""
    match = re.match(r"^([A-Za-z]{1,5}_)", token)
    if match:
        prefix = match.group(1)
    return f"{prefix}…{token[-4:]}"


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(value: Any, what: str, *, template: bool = False) -> str:
    from urllib.parse import urlsplit

    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a http:// or https:// URL")
    value = value.strip()
    probe = value.replace("{machine_id}", "machine") if template else value
    try:
        parts = urlsplit(probe)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"{what} is not a valid URL: {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be a http:// or https:// URL, got {value!r}")
    if template and "{machine_id}" not in value:
        raise ValueError(f"{what} must contain {{machine_id}}, e.g. {DEFAULT_INITD_ENDPOINT}")
    return value.rstrip("/")


def _check_word(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    value = value.strip()
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError(f"{what} must not contain spaces or control characters")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError(f"{what} is not valid UTF-8")
    return value


def _check_file(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be the path of a PEM file")
    path = Path(value.strip()).expanduser()
    if not path.is_file():
        raise ValueError(f"{what}: no such file: {value.strip()}")
    return str(path.resolve())


def check_token(value: Any) -> str:
    """A token as read from a prompt, stdin or a file: surrounding whitespace dropped, nothing odd inside."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("the token is empty")
    value = value.strip()
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError("the token must be a single word (no spaces or line breaks inside)")
    return value


def parse_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{what} must be true or false")


def _check_timeout(value: Any, what: str) -> float:
    """Seconds from 30, 30.5, "30", "30s" or "2m" (durations.parse, as every time option)."""
    from valyent_cli.durations import parse

    number = parse(value)
    if number is None:
        raise ValueError(f"{what} must be a duration: seconds, or such as 30s or 2m, not {value!r}")
    if not (number > 0) or number == float("inf"):
        raise ValueError(f"{what} must be a positive duration")
    return number


def check_profile_value(key: str, value: Any) -> Any:
    """Validate (and coerce, for strings typed on a command line) one profile value. ValueError if bad."""
    what = key
    if key == "endpoint":
        return _check_url(value, what)
    if key == "initd_endpoint":
        return _check_url(value, what, template=True)
    if key == "token":
        return check_token(value)
    if key == "namespace":
        from valyent_cli.names import object_name_error

        value = _check_word(value, what)
        error = object_name_error(value)
        if error:  # Ravel creates no namespace of such a name (ravel/validation.go): no request could succeed
            raise ValueError(f"invalid {what} {value!r}: {error}")
        return value
    if key in ("fleet", "region", "cpu_kind"):
        return _check_word(value, what)
    if key == "auth_scheme":
        if not isinstance(value, str) or value.strip().lower() not in AUTH_SCHEMES:
            raise ValueError(f"{what} must be one of {', '.join(AUTH_SCHEMES)}, not {value!r}")
        return value.strip().lower()
    if key in ("ca_cert", "client_cert", "client_key"):
        return _check_file(value, what)
    if key == "timeout":
        return _check_timeout(value, what)
    if key in ("allow_http", "local"):
        return parse_bool(value, what)
    if key == "data_dir":
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            raise ValueError(f"{what} must be a directory path")
        return value
    raise ValueError(f"unknown key {key!r}; valid keys: {', '.join(PROFILE_KEYS)}")


def check_key(key: str, *, settable: bool = False) -> str:
    """Raise ValueError naming the valid keys when ``key`` is not one."""
    valid = SETTABLE_KEYS if settable else tuple(PROFILE_KEYS)
    if key == "token" and settable:
        raise ValueError(
            "the token is not set with `profiles set` (it would end up in your shell history); "
            "use `valyent auth login --profile NAME` or `--token-stdin`"
        )
    if key not in valid:
        raise ValueError(f"unknown key {key!r}; valid keys: {', '.join(valid)}")
    return key


def check_profile_name(name: str) -> str:
    if not isinstance(name, str) or not re.match(_PROFILE_NAME, name):
        raise ValueError(
            f"invalid profile name {name!r}: use 1-63 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return name
