"""What a 2xx answer must look like before the client hands it on.

A server (or a proxy, or a broken deployment) can answer 200 with any JSON: ``{}`` for a machine, ``"x"`` where a
list belongs, a list of numbers. Each shape is checked once, here, when the answer is parsed, so that nothing
further on meets a missing ``id`` as a ``KeyError`` or a string where a list belongs as an ``AttributeError``: the
caller gets one ``ResponseError`` that starts with "unexpected answer from the server" and says what was expected.

A spec maps a key to the type its value must have: a type, a tuple of types, or a nested spec (an object). A key
written ``"?key"`` is optional and may be null; any other key is required, and an ``id`` must not be empty. Keys the spec does not name are kept and never checked: the API may add fields.
"""

from __future__ import annotations

import json
from typing import Any

from valyent_cli.api.errors import ResponseError

PREFIX = "unexpected answer from the server"

_WORKLOAD = {"?env": list, "?init": {"?cmd": list, "?entrypoint": list, "?user": str}, "?restart": dict}
_CONFIG = {"?image": str, "?guest": dict, "?workload": _WORKLOAD, "?stop_config": dict}

#: the shapes of the answers, by the name the resources give them
SPECS: dict[str, dict[str, Any]] = {
    "machine": {"id": str, "?state": str, "?fleet": str, "?config": _CONFIG, "?events": list},
    "machines": {"id": str, "?state": str, "?fleet": str, "?config": _CONFIG, "?events": list},
    "fleet": {"id": str, "?name": str},
    "fleets": {"id": str, "?name": str},
    "gateway": {"id": str, "?name": str},
    "gateways": {"id": str, "?name": str},
    "events": {"?type": str, "?status": str, "?payload": dict},
    "entry": {"name": str, "is_dir": bool},
    "entries": {"name": str, "is_dir": bool},
    "exec result": {"exit_code": int, "?stdout": str, "?stderr": str},
}

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "an object",
               float: "a number"}


def preview(value: Any, limit: int = 80) -> str:
    """A short picture of a value for a message: its JSON, cut."""
    try:
        text = json.dumps(value, ensure_ascii=True, default=str)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _a(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    for t, name in _TYPE_NAMES.items():
        if isinstance(value, t):
            return name
    return type(value).__name__


def _fits(value: Any, expected: Any) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        return False  # JSON true is not the integer an exit code must be
    return isinstance(value, types)


def _check(data: dict[str, Any], spec: dict[str, Any], path: str) -> str | None:
    """What is wrong with ``data`` against ``spec``, or None."""
    for raw_key, expected in spec.items():
        optional = raw_key.startswith("?")
        key = raw_key.lstrip("?")
        where = f"{path}{key}"
        if key not in data or data[key] is None:
            if optional:
                continue
            return f'{_a(where)} "{where}"'
        value = data[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                return f'"{where}" as an object (got {_kind(value)})'
            problem = _check(value, expected, where + ".")
            if problem:
                return problem
            continue
        if not _fits(value, expected):
            names = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in (expected if isinstance(expected, tuple) else (expected,)))
            return f'"{where}" as {names} (got {_kind(value)})'
        if key == "id" and not value.strip():
            return f'a non-empty "{where}"'
    return None


# The fast path: each spec compiled to (key, optional, exact types or a nested compiled spec), checked without
# building any string; only an answer that fails it goes through _check, which says what is wrong. Lists of
# thousands of machines pass through here.
def _compile(spec: dict[str, Any]) -> tuple[tuple[str, bool, Any], ...]:
    out = []
    for raw_key, expected in spec.items():
        if isinstance(expected, dict):
            check: Any = _compile(expected)
        else:
            check = frozenset(expected if isinstance(expected, tuple) else (expected,))
        out.append((raw_key.lstrip("?"), raw_key.startswith("?"), check))
    return tuple(out)


def _fits_fast(data: dict[str, Any], compiled: tuple[tuple[str, bool, Any], ...]) -> bool:
    for key, optional, check in compiled:
        value = data.get(key)
        if value is None:
            if optional:
                continue
            return False
        if type(check) is tuple:
            if type(value) is not dict or not _fits_fast(value, check):
                return False
        elif type(value) not in check or (key == "id" and not value.strip()):
            return False
    return True


_COMPILED = {what: _compile(spec) for what, spec in SPECS.items()}


def _problem(data: dict[str, Any], what: str) -> str | None:
    if _fits_fast(data, _COMPILED.get(what, ())):
        return None
    return _check(data, SPECS.get(what, {}), "")


def expect_object(data: Any, what: str) -> dict[str, Any]:
    """``data`` if it is a ``what`` object of the right shape; else a ResponseError saying what was expected."""
    if not isinstance(data, dict):
        raise ResponseError(f"{PREFIX}: expected {_a(what)} {what} object, got {_kind(data)}: {preview(data)}")
    problem = _problem(data, what)
    if problem:
        raise ResponseError(f"{PREFIX}: expected {_a(what)} {what} object with {problem}: {preview(data)}")
    return data


def expect_array(data: Any, what: str) -> list[dict[str, Any]]:
    """``data`` if it is a JSON array of ``what`` objects of the right shape (null is an empty list)."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise ResponseError(f"{PREFIX}: expected a JSON array of {what}, got {_kind(data)}: {preview(data)}")
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise ResponseError(
                f"{PREFIX}: expected a JSON array of {what} (objects), but item {index} is {_kind(item)}: "
                f"{preview(item)}"
            )
        problem = _problem(item, what)
        if problem:
            raise ResponseError(
                f"{PREFIX}: expected a JSON array of {what} (objects) each with {problem}, item {index} is "
                f"{preview(item)}"
            )
    return data
