"""Types of every payload and response of the Valyent API (see api-contract.md).

Request payloads are TypedDicts (build them as plain dicts). Responses are dict subclasses (``Fleet``,
``Machine``, ``Gateway`` in their resource modules) that keep every key the server sent, known or not.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal, NotRequired, TypedDict



class StrEnum(str, Enum):
    def __str__(self) -> str:
        return self.value


class MachineStatus(StrEnum):
    CREATED = "created"
    PREPARING = "preparing"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DESTROYING = "destroying"
    DESTROYED = "destroyed"


#: the states ``wait`` accepts
WAITABLE_STATES = (MachineStatus.RUNNING, MachineStatus.STOPPED, MachineStatus.DESTROYED)

# the fixed lists as plain strings (STATES: the values of WAITABLE_STATES), defined once in constants.py
from valyent_cli.api.constants import (  # noqa: E402,F401
    DEFAULT_STOP_SIGNAL, LOG_SOURCES, RESTART_POLICIES, SIGNALS, STATES,
)


class RestartPolicy(StrEnum):
    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    NEVER = "never"


class MachineEventType(StrEnum):
    CREATED = "machine.created"
    PREPARE = "machine.prepare"
    PREPARED = "machine.prepared"
    PREPARE_FAILED = "machine.prepare_failed"
    START = "machine.start"
    START_FAILED = "machine.start_failed"
    STARTED = "machine.started"
    STOP = "machine.stop"
    STOP_FAILED = "machine.stop_failed"
    EXITED = "machine.exited"
    DESTROY = "machine.destroy"
    DESTROYED = "machine.destroyed"


class Origin(StrEnum):
    RAVEL = "ravel"
    USER = "user"


class HealthStatus(StrEnum):
    UNKNOWN = "unknown"
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class GuestConfig(TypedDict):
    cpu_kind: str
    memory_mb: int
    cpus: int


class RestartConfig(TypedDict, total=False):
    policy: Literal["always", "on-failure", "never"]
    max_retries: int


class InitConfig(TypedDict, total=False):
    cmd: list[str]
    entrypoint: list[str]
    user: str


class SecretRef(TypedDict):
    """A secret of the namespace put in the environment as ``env_var`` (Ravel's api/machines.go SecretRef)."""
    name: str
    env_var: str


class VolumeMount(TypedDict):
    name: str
    path: str


class HealthCheck(TypedDict, total=False):
    """Server defaults: interval 30 s, timeout 5 s, retries 3."""
    exec: list[str]
    interval: int
    timeout: int
    retries: int


class PrivateNetwork(TypedDict):
    name: str
    ip: str  # with its prefix, e.g. 10.0.1.2/24


class Metadata(TypedDict, total=False):
    """Labels (at most 64; key <= 63, value <= 255) and annotations (at most 32); the `ravel.` prefix is reserved
    (Ravel's api/metadata.go)."""
    labels: dict[str, str]
    annotations: dict[str, str]


class Workload(TypedDict, total=False):
    env: list[str]
    restart: RestartConfig
    init: InitConfig
    auto_destroy: bool
    secrets: list[SecretRef]
    volumes: list[VolumeMount]
    health_check: HealthCheck
    private_networks: list[PrivateNetwork]


class StopConfig(TypedDict, total=False):
    timeout: int
    signal: str


class MachineConfig(TypedDict):
    image: str
    guest: GuestConfig
    workload: NotRequired[Workload]
    stop_config: NotRequired[StopConfig]


class CreateMachinePayload(TypedDict):
    region: str
    config: MachineConfig
    skip_start: NotRequired[bool]
    enable_machine_gateway: NotRequired[bool]
    metadata: NotRequired[Metadata]


class CreateFleetPayload(TypedDict):
    name: str
    metadata: NotRequired[Metadata]


class CreateGatewayPayload(TypedDict):
    name: NotRequired[str]  # Ravel generates one (the fleet's name and four characters) when absent
    target_port: int


class FleetData(TypedDict, total=False):
    id: str
    namespace: str
    name: str
    created_at: str
    status: Literal["active", "destroyed"]
    metadata: Metadata


class MachineEvent(TypedDict, total=False):
    id: str
    machine_id: str
    instance_id: str
    status: str
    type: str
    origin: str
    payload: dict[str, Any]
    timestamp: str


class MachineData(TypedDict, total=False):
    id: str
    namespace: str
    fleet: str
    instance_id: str
    machine_version: str
    region: str
    config: MachineConfig
    created_at: str
    updated_at: str
    events: list[MachineEvent]
    state: str
    health: str
    gateway_enabled: bool
    metadata: Metadata


class GatewayData(TypedDict, total=False):
    id: str
    name: str
    namespace: str
    fleet_id: str
    protocol: str
    target_port: int
    url: str  # the local sandbox only: where the gateway answers, on loopback


class BuildData(TypedDict, total=False):
    """An image build (Ravel's `api/builds.go`)."""

    id: str
    namespace: str
    node_id: str
    image_name: str
    tag: str
    registry: str
    full_image: str
    status: str  # pending, building, pushing, completed, failed
    digest: str
    error: str
    duration_ms: int
    created_at: str
    completed_at: str


class LogEntry(TypedDict, total=False):
    timestamp: int | float
    instance_id: str
    source: str
    level: str
    message: str


class ExecPayload(TypedDict):
    cmd: list[str]
    timeout_ms: NotRequired[int]


class ExecResult(TypedDict):
    stdout: str
    stderr: str
    exit_code: int


class FSEntry(TypedDict):
    name: str
    path: str
    is_dir: bool
    size: int
    mod_time: int


# the base of every response object, in a module of its own (api/_object.py); re-exported here
from valyent_cli.api._object import ApiObject  # noqa: E402,F401
