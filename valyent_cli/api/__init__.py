"""A Python client of the Valyent Cloud API (usable on its own as an SDK; it imports neither typer nor rich).

    from valyent_cli.api import Client
    client = Client("token")
    fleet = client.fleets.create("my-fleet")
    machine = client.machines.create(fleet.id, {"region": "gra-1", "config": {...}})
"""

from valyent_cli.api.client import DEFAULT_ENDPOINT, DEFAULT_INITD_ENDPOINT, Client, Exchange
from valyent_cli.api.errors import (
    ApiError,
    AuthError,
    BadRequest,
    Conflict,
    ConnectError,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    PaymentRequired,
    RateLimited,
    ResponseError,
    ServerError,
    StreamError,
    TimeoutError,
    TransportError,
    ValyentError,
)
from valyent_cli.api.builds import Build
from valyent_cli.api.fleets import Fleet
from valyent_cli.api.gateways import Gateway
from valyent_cli.api.initd import FileSystem
from valyent_cli.api.logs import entry_time
from valyent_cli.api.machines import Machine
from valyent_cli.api.types import (
    CreateFleetPayload,
    CreateGatewayPayload,
    CreateMachinePayload,
    ExecPayload,
    ExecResult,
    FSEntry,
    GuestConfig,
    HealthStatus,
    InitConfig,
    LogEntry,
    MachineConfig,
    MachineEvent,
    MachineEventType,
    MachineStatus,
    Origin,
    RestartConfig,
    RestartPolicy,
    StopConfig,
    Workload,
)

#: the seed SDK's name for an API error carrying its payload
FetchErrorWithPayload = ApiError

__all__ = [
    "DEFAULT_ENDPOINT", "DEFAULT_INITD_ENDPOINT", "Client", "Exchange", "ApiError", "AuthError", "BadRequest",
    "Conflict", "ConnectError", "DeadlineExceeded", "InvalidArgument", "NotFound", "PaymentRequired", "RateLimited", "ResponseError",
    "ServerError", "StreamError", "TimeoutError", "TransportError", "ValyentError", "FetchErrorWithPayload", "Fleet",
    "Build", "Gateway", "FileSystem", "Machine", "entry_time", "CreateFleetPayload", "CreateGatewayPayload",
    "CreateMachinePayload", "ExecPayload", "ExecResult", "FSEntry", "GuestConfig", "HealthStatus", "InitConfig",
    "LogEntry", "MachineConfig", "MachineEvent", "MachineEventType", "MachineStatus", "Origin", "RestartConfig",
    "RestartPolicy", "StopConfig", "Workload",
]
