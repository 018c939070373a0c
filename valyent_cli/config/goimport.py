"""Importing the archived Go CLI's configuration (``~/.valyent/config.yaml``) as a profile."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from valyent_cli.config.errors import ConfigError
from valyent_cli.config.paths import go_config_path
from valyent_cli.config.profiles import create_profile
from valyent_cli.config.values import check_profile_value
from valyent_cli.defaults import DEFAULT_PROFILE


def parse_go_config(text: str) -> dict[str, str]:
    """Read the archived Go CLI's ``~/.valyent/config.yaml``.

    That CLI wrote two flat keys, ``key`` (the token) and ``namespace``. Rather than depend on a YAML library for
    two scalars, this reads flat ``name: value`` lines: plain, single- or double-quoted values, ``#`` comments,
    a ``---`` document marker. Indented lines (nested YAML) are ignored: they are not keys the Go CLI wrote.
    """
    out: dict[str, str] = {}
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#") or raw.strip() in ("---", "..."):
            continue
        if raw[0].isspace():
            continue
        name, sep, rest = raw.partition(":")
        if not sep:
            continue
        name = name.strip().strip("'\"")
        rest = rest.strip()
        if rest[:1] in ("'", '"'):
            value = _yaml_quoted(rest)
        else:
            value = re.split(r"\s+#", rest, maxsplit=1)[0].strip()
        out[name] = value
    return out


def _yaml_quoted(text: str) -> str:
    """The value of a YAML quoted scalar: '' escapes a quote in single quotes; \\" and \\\\ in double quotes."""
    quote, out, i = text[0], [], 1
    while i < len(text):
        ch = text[i]
        if quote == "'" and ch == "'":
            if text[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
                continue
            break
        if quote == '"' and ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if quote == '"' and ch == '"':
            break
        out.append(ch)
        i += 1
    return "".join(out)


def import_go_config(path: Path | None = None, name: str = DEFAULT_PROFILE, *, activate: bool = False) -> tuple[str, bool]:
    """Turn the Go CLI's config into a profile. Returns (name, whether it is now active)."""
    path = Path(path) if path is not None else go_config_path()
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(path, None, "no such file: nothing to import (the Go CLI keeps ~/.valyent/config.yaml)")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, f"cannot read the file: {getattr(exc, 'strerror', None) or exc}") from None
    values = parse_go_config(text)
    token = values.get("key")
    if not token:
        raise ConfigError(path, None, "no `key` (the API token) in the file: nothing to import")
    profile: dict[str, Any] = {"token": token}
    if values.get("namespace"):
        profile["namespace"] = values["namespace"]
    try:
        profile = {key: check_profile_value(key, value) for key, value in profile.items()}
    except ValueError as exc:
        raise ConfigError(path, None, str(exc)) from None
    active = create_profile(name, profile, activate=activate)
    return name, active
