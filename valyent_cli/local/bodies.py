"""The request bodies Ravel's endpoints declare, and huma v2.27.0's check of their shape (issue 23 item 15).

Ravel (`github.com/danielgtaylor/huma/v2 v2.27.0` in its go.mod) declares each body as a Go struct; huma builds a
schema from it (`schema.go`, SchemaFromType): every field is **required** unless its json tag says `omitempty`, and
no other property is allowed (`additionalProperties: false`). Its validator (`validate.go`) then answers 422 with
one error per problem: `expected required property NAME to be present` at the object's location, `unexpected
property` at the property's location (a key equal to a field's name but for case is not unexpected:
`ValidateStrictCasing` is false), each with the object as its value. Ravel's error builder
(`internal/humautil/errors.go`) turns that into its problem JSON, `Code` `UNKNOWN` for a 422.

Each schema below names the Go type it comes from. A schema maps a property to (required, what it holds): None for a
scalar or a map of strings, a dict for an object, a one-item list for an array of objects.
"""

from __future__ import annotations

from typing import Any

from valyent_cli.local.problems import Problem

Schema = dict[str, tuple[bool, Any]]

# api/machines.go
STOP_CONFIG: Schema = {"timeout": (False, None), "signal": (False, None)}
RESTART: Schema = {"policy": (False, None), "max_retries": (False, None)}
INIT: Schema = {"cmd": (False, None), "entrypoint": (False, None), "user": (False, None)}
HEALTH_CHECK: Schema = {"exec": (False, None), "interval": (False, None), "timeout": (False, None),
                        "retries": (False, None)}
VOLUME: Schema = {"name": (True, None), "path": (True, None)}
PRIVATE_NETWORK: Schema = {"name": (True, None), "ip": (True, None)}
SECRET_REF: Schema = {"name": (True, None), "env_var": (True, None)}
WORKLOAD: Schema = {
    "restart": (False, RESTART), "env": (False, None), "secrets": (False, [SECRET_REF]), "volumes": (False, [VOLUME]),
    "init": (False, INIT), "health_check": (False, HEALTH_CHECK), "private_networks": (False, [PRIVATE_NETWORK]),
    "auto_destroy": (False, None),
}
GUEST: Schema = {"cpu_kind": (True, None), "memory_mb": (True, None), "cpus": (True, None)}
MACHINE_CONFIG: Schema = {"image": (True, None), "guest": (True, GUEST), "workload": (False, WORKLOAD),
                          "stop_config": (False, STOP_CONFIG)}
# api/metadata.go
METADATA: Schema = {"labels": (False, None), "annotations": (False, None)}
UPDATE_METADATA: Schema = {"metadata": (True, METADATA)}  # UpdateFleetMetadataPayload, UpdateMachineMetadataPayload
CREATE_MACHINE: Schema = {"region": (True, None), "config": (True, MACHINE_CONFIG), "skip_start": (False, None),
                          "enable_machine_gateway": (False, None), "metadata": (False, METADATA)}
EXEC: Schema = {"cmd": (True, None), "timeout_ms": (True, None)}  # ExecOptions: no omitempty on either
# api/fleets.go, api/gateways.go, ravel/server/endpoints/namespaces.go, api/secrets.go
CREATE_FLEET: Schema = {"name": (True, None), "metadata": (False, METADATA)}
CREATE_GATEWAY: Schema = {"name": (False, None), "target_port": (True, None)}
CREATE_NAMESPACE: Schema = {"name": (True, None)}
CREATE_SECRET: Schema = {"name": (True, None), "value": (True, None)}
UPDATE_SECRET: Schema = {"value": (True, None)}


def _walk(value: Any, schema: Schema, location: str, errors: list[dict]) -> None:
    if not isinstance(value, dict):
        return  # a wrong type is the field checks' to refuse
    folded = {k.lower(): k for k in value}
    for name, (required, inner) in schema.items():
        key = name if name in value else folded.get(name.lower())
        if key is None:
            if required:
                errors.append({"message": f"expected required property {name} to be present", "location": location,
                               "value": value})
            continue
        if isinstance(inner, dict):
            _walk(value[key], inner, f"{location}.{name}", errors)
        elif isinstance(inner, list) and isinstance(value[key], list):
            for i, item in enumerate(value[key]):
                _walk(item, inner[0], f"{location}.{name}[{i}]", errors)
    known = {name.lower() for name in schema}
    for key in value:
        if key.lower() not in known:
            errors.append({"message": "unexpected property", "location": f"{location}.{key}", "value": value})


def check_body(body: Any, schema: Schema) -> Any:
    """422 listing every missing required property and every unexpected one of `body`, as huma does; else `body`."""
    errors: list[dict] = []
    _walk(body, schema, "body", errors)
    if errors:
        raise Problem("UNKNOWN", "validation failed", errors, status=422)
    return body
