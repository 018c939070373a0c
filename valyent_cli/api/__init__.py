"""A Python client of the Valyent Cloud API (usable on its own as an SDK; it imports neither typer nor rich).

    from valyent_cli.api import Client
    client = Client("token")
    fleet = client.fleets.create("my-fleet")
    machine = client.machines.create(fleet.id, {"region": "gra-1", "config": {...}})

The names below are loaded on first use (PEP 562): ``import valyent_cli.api.types`` (the payload types and the
lists of states, signals and restart policies) loads no HTTP library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(["DEFAULT_ENDPOINT", "DEFAULT_INITD_ENDPOINT", "Client", "Exchange"], "client"),
    **dict.fromkeys([
        "ApiError", "AuthError", "BadRequest", "Conflict", "ConnectError", "DeadlineExceeded", "InvalidArgument",
        "MachineFailed", "NotFound", "PaymentRequired", "RateLimited", "ResponseError", "ServerError", "StreamError", "TimeoutError",
        "TransportError", "ValyentError",
    ], "errors"),
    "Build": "builds",
    "Fleet": "fleets",
    "Gateway": "gateways",
    "FileSystem": "initd",
    "entry_time": "logs",
    "Machine": "machines",
    **dict.fromkeys([
        "CreateFleetPayload", "CreateGatewayPayload", "CreateMachinePayload", "ExecPayload", "ExecResult", "FSEntry",
        "GuestConfig", "HealthCheck", "HealthStatus", "InitConfig", "LogEntry", "MachineConfig", "MachineEvent",
        "MachineEventType", "MachineStatus", "Metadata", "Origin", "PrivateNetwork", "RestartConfig", "RestartPolicy",
        "SecretRef", "StopConfig", "VolumeMount", "Workload",
    ], "types"),
}
#: the seed SDK's name for an API error carrying its payload
_ALIASES = {"FetchErrorWithPayload": "ApiError"}

__all__ = [*_EXPORTS, *_ALIASES]


def __getattr__(name: str) -> Any:
    target = _ALIASES.get(name, name)
    module = _EXPORTS.get(target)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), target)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:  # for type checkers and editors: the same names, imported eagerly
    from valyent_cli.api.client import DEFAULT_ENDPOINT, DEFAULT_INITD_ENDPOINT, Client, Exchange  # noqa: F401
    from valyent_cli.api.errors import (  # noqa: F401
        ApiError, AuthError, BadRequest, Conflict, ConnectError, DeadlineExceeded, InvalidArgument, MachineFailed,
        NotFound, PaymentRequired, RateLimited, ResponseError, ServerError, StreamError, TimeoutError, TransportError,
        ValyentError,
    )
    from valyent_cli.api.builds import Build  # noqa: F401
    from valyent_cli.api.fleets import Fleet  # noqa: F401
    from valyent_cli.api.gateways import Gateway  # noqa: F401
    from valyent_cli.api.initd import FileSystem  # noqa: F401
    from valyent_cli.api.logs import entry_time  # noqa: F401
    from valyent_cli.api.machines import Machine  # noqa: F401
    from valyent_cli.api.types import (  # noqa: F401
        CreateFleetPayload, CreateGatewayPayload, CreateMachinePayload, ExecPayload, ExecResult, FSEntry,
        GuestConfig, HealthCheck, HealthStatus, InitConfig, LogEntry, MachineConfig, MachineEvent, MachineEventType,
        MachineStatus, Metadata, Origin, PrivateNetwork, RestartConfig, RestartPolicy, SecretRef, StopConfig,
        VolumeMount, Workload,
    )

    FetchErrorWithPayload = ApiError
