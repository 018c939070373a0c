"""Plain parameters coerced without pydantic.

Typer 0.29 coerces every parameter value through a pydantic ``TypeAdapter``: the first non-flag option of a run
imports pydantic, about 60 ms, a third of the start-up of a command. Our parameters are plain ``str``, ``int``, ``bool``
and ``list[str]``; for those a value that is already right (or a plain decimal integer) is taken as it is, and
anything else goes through typer's own coercion, so its error messages are unchanged. Typer is pinned to 0.29.x
in pyproject.toml because this hooks its coercion factory; tests/test_imports.py checks that it still works.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from typer import _coercion, core

_INT = re.compile(r"[+-]?\d{1,18}")
_build = _coercion.build_runtime_param


@dataclass(frozen=True)
class PlainRuntimeParam(_coercion.RuntimeParam):
    descriptor: Any = None

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        annotation = self.annotation
        if annotation is str and isinstance(value, str) or annotation is bool and isinstance(value, bool):
            return value
        if annotation is int and isinstance(value, str) and _INT.fullmatch(value):
            return int(value)
        if annotation == list[str] and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        return _build(self.descriptor)._coerce_value(value, param=param, ctx=ctx)


def _build_runtime_param(descriptor: Any) -> Any:
    if (
        descriptor.file_annotation is None
        and descriptor.annotation in (str, int, bool, list[str])
        and descriptor.parameter_info.min is None
        and descriptor.parameter_info.max is None
    ):
        return PlainRuntimeParam(
            annotation=descriptor.annotation, parameter_info=descriptor.parameter_info, descriptor=descriptor
        )
    return _build(descriptor)


def install() -> None:
    core.build_runtime_param = _build_runtime_param  # type: ignore[assignment]
