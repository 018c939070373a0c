"""The request bodies of a stock Ravel as huma v2.27.0 (Ravel's go.mod) validates them, for tests/support/ravelstub.py.

huma builds a JSON schema from each Go body type (huma schema.go, `SchemaFromType`):
- every field is required unless its `json` tag has `omitempty` (or a `required:"false"` tag);
- an object allows no other property: an unknown key is "unexpected property" at its location;
- a required property that is missing is "expected required property NAME to be present", at the object's location;
- a `null` for a property that is not required is ignored; for a required one it is checked against its type;
- `minimum`, `minLength`, `maxLength` and `pattern` tags are checked (validate.go, validation/messages.go).
Every failure is collected and answered 422 "validation failed" through Ravel's error builder
(internal/humautil/errors.go).

A schema here is a Python value: `int`, `str`, `bool`, `[item]` (an array), `{str: str}` given as `MAP` (a Go
`map[string]string`), or an `Obj` of fields `name: (schema, required, checks)`.
"""

from __future__ import annotations

import re
from typing import Any

MAP = "map[string]string"


class Obj:
    def __init__(self, go_type: str, **fields: tuple) -> None:
        self.go_type = go_type
        self.fields = {name: (spec + ({},))[:3] if len(spec) == 2 else spec for name, spec in fields.items()}


# api/metadata.go: Metadata {Labels map `omitempty`, Annotations map `omitempty`}
METADATA = Obj("Metadata", labels=(MAP, False), annotations=(MAP, False))
# api/machines.go
STOP_CONFIG = Obj("StopConfig", timeout=(int, False), signal=(str, False))
GUEST = Obj("GuestConfig", cpu_kind=(str, True), memory_mb=(int, True, {"minimum": 1}),
            cpus=(int, True, {"minimum": 1}))
WORKLOAD = Obj(
    "Workload",
    restart=(Obj("RestartPolicyConfig", policy=(str, False), max_retries=(int, False)), False),
    env=([str], False),
    secrets=([Obj("SecretRef", name=(str, True), env_var=(str, True))], False),
    volumes=([Obj("VolumeMount", name=(str, True), path=(str, True))], False),
    init=(Obj("InitConfig", cmd=([str], False), entrypoint=([str], False), user=(str, False)), False),
    health_check=(Obj("HealthCheck", exec=([str], False), interval=(int, False), timeout=(int, False),
                      retries=(int, False)), False),
    private_networks=([Obj("PrivateNetwork", name=(str, True), ip=(str, True))], False),
    auto_destroy=(bool, False),
)
MACHINE_CONFIG = Obj("MachineConfig", image=(str, True), guest=(GUEST, True), workload=(WORKLOAD, False),
                     stop_config=(STOP_CONFIG, False))
CREATE_MACHINE = Obj("CreateMachinePayload", region=(str, True), config=(MACHINE_CONFIG, True),
                     skip_start=(bool, False), enable_machine_gateway=(bool, False), metadata=(METADATA, False))
# ExecOptions: `TimeoutMs int json:"timeout_ms"`, no omitempty: required
EXEC = Obj("ExecOptions", cmd=([str], True), timeout_ms=(int, True))
UPDATE_METADATA = Obj("UpdateMetadataPayload", metadata=(METADATA, True))
# api/gateways.go: CreateGatewayPayload {Name `omitempty`, TargetPort int}
CREATE_GATEWAY = Obj("CreateGatewayPayload", name=(str, False), target_port=(int, True))
# api/fleets.go
CREATE_FLEET = Obj("CreateFleetPayload", name=(str, True), metadata=(METADATA, False))
# ravel/server/endpoints/namespaces.go: CreateNamespaceBody
CREATE_NAMESPACE = Obj("CreateNamespaceBody", name=(str, True))
# api/secrets.go
_SECRET_NAME = {"minLength": 1, "maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}
CREATE_SECRET = Obj("CreateSecretPayload", name=(str, True, _SECRET_NAME), value=(str, True, {"minLength": 1}))
UPDATE_SECRET = Obj("UpdateSecretPayload", value=(str, True, {"minLength": 1}))


def validate(schema: Any, value: Any, location: str = "body") -> list[dict[str, Any]]:
    """The errors huma reports for `value` (its `ErrorDetail`s: message, location, value)."""
    errors: list[dict[str, Any]] = []
    _check(schema, value, location, errors)
    return errors


def _add(errors: list, location: str, message: str, value: Any) -> None:
    errors.append({"message": message, "location": location, "value": value})


def _check(schema: Any, value: Any, location: str, errors: list, checks: dict | None = None) -> None:
    checks = checks or {}
    if schema is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _add(errors, location, "expected number", value)
        elif "minimum" in checks and value < checks["minimum"]:
            _add(errors, location, f"expected number >= {checks['minimum']}", value)
        elif isinstance(value, float) and not value.is_integer():
            _add(errors, location, "expected integer", value)
    elif schema is str:
        if not isinstance(value, str):
            _add(errors, location, "expected string", value)
            return
        if "minLength" in checks and len(value) < checks["minLength"]:
            _add(errors, location, f"expected length >= {checks['minLength']}", value)
        if "maxLength" in checks and len(value) > checks["maxLength"]:
            _add(errors, location, f"expected length <= {checks['maxLength']}", value)
        if "pattern" in checks and not re.search(checks["pattern"], value):
            _add(errors, location, f"expected string to match pattern {checks['pattern']}", value)
    elif schema is bool:
        if not isinstance(value, bool):
            _add(errors, location, "expected boolean", value)
    elif isinstance(schema, list):
        if not isinstance(value, list):
            _add(errors, location, "expected array", value)
            return
        for i, item in enumerate(value):
            _check(schema[0], item, f"{location}[{i}]", errors)
    elif schema == MAP:
        if not isinstance(value, dict):
            _add(errors, location, "expected object", value)
            return
        for key, item in value.items():
            _check(str, item, f"{location}.{key}", errors)
    elif isinstance(schema, Obj):
        if not isinstance(value, dict):
            _add(errors, location, "expected object", value)
            return
        for name, (sub, required, sub_checks) in schema.fields.items():
            if name not in value:
                if required:
                    _add(errors, location, f"expected required property {name} to be present", value)
                continue
            if value[name] is None and not required:
                continue
            _check(sub, value[name], f"{location}.{name}", errors, sub_checks)
        for name in value:
            # huma v2.27 validate.go: unknown keys are refused, matched case-insensitively (ValidateStrictCasing off)
            if name not in schema.fields and not any(name.lower() == f.lower() for f in schema.fields):
                _add(errors, f"{location}.{name}", "unexpected property", value)
