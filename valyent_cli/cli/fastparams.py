"""Plain parameters coerced without pydantic.

Typer 0.29 coerces every parameter value through a pydantic ``TypeAdapter``: the first non-flag option of a run
imports pydantic, about 60 ms, a third of the start-up of a command. Our parameters are plain ``str``, ``int``, ``bool``
and ``list[str]``; for those a value that is already right (or a plain decimal integer) is taken as it is, and
anything else goes through typer's own coercion, so its error messages are unchanged.

This hooks typer's private coercion factory (``typer._coercion.build_runtime_param``, used through
``typer.core.build_runtime_param``). ``install()`` checks that typer has exactly the names and fields it expects and
otherwise leaves typer's own path in place: a typer upgrade that renames them costs start-up time, never a command.
A parameter with a ``parser=`` (or a click type, or bounds) always goes through typer.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

_INT = re.compile(r"[+-]?\d{1,18}")
_PLAIN = (str, int, bool, list[str])
_DESCRIPTOR_FIELDS = ("annotation", "parameter_info", "file_annotation")
_INFO_FIELDS = ("min", "max", "parser", "click_type")

installed = False


def _typer_parts() -> tuple[Any, Any] | None:
    """typer's coercion module and core module, when they have what this module relies on; else None."""
    try:
        from typer import _coercion, core
    except ImportError:
        return None
    base = getattr(_coercion, "RuntimeParam", None)
    build = getattr(_coercion, "build_runtime_param", None)
    descriptor = getattr(_coercion, "TypeDescriptor", None)
    if not (isinstance(base, type) and callable(build) and callable(getattr(core, "build_runtime_param", None))):
        return None
    if not (hasattr(base, "_coerce_value") and hasattr(base, "coerce")):
        return None
    if descriptor is not None and dataclasses.is_dataclass(descriptor):
        names = {f.name for f in dataclasses.fields(descriptor)}
        if not set(_DESCRIPTOR_FIELDS) <= names:
            return None
    return _coercion, core


def _is_plain(descriptor: Any) -> bool:
    try:
        info = descriptor.parameter_info
        if descriptor.file_annotation is not None or descriptor.annotation not in _PLAIN:
            return False
        return all(getattr(info, name, None) is None for name in _INFO_FIELDS)
    except (AttributeError, TypeError):
        return False


def install() -> bool:
    """Hook typer's coercion for plain parameters; False (and typer untouched) when typer is not as expected."""
    global installed
    if installed:
        return True
    parts = _typer_parts()
    if parts is None:
        return False
    _coercion, core = parts
    typer_build = _coercion.build_runtime_param

    @dataclasses.dataclass(frozen=True)
    class PlainRuntimeParam(_coercion.RuntimeParam):  # type: ignore[misc, name-defined]
        descriptor: Any = None

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            annotation = self.annotation
            if annotation is str and isinstance(value, str) or annotation is bool and isinstance(value, bool):
                return value
            if annotation is int and isinstance(value, str) and _INT.fullmatch(value):
                return int(value)
            if annotation == list[str] and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return list(value)
            return typer_build(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

    def build_runtime_param(descriptor: Any) -> Any:
        if _is_plain(descriptor):
            return PlainRuntimeParam(
                annotation=descriptor.annotation, parameter_info=descriptor.parameter_info, descriptor=descriptor
            )
        return typer_build(descriptor)

    try:
        PlainRuntimeParam(annotation=str, parameter_info=None, descriptor=None)
    except TypeError:  # RuntimeParam's fields changed: leave typer alone
        return False
    core.build_runtime_param = build_runtime_param
    installed = True
    return True
