"""Small things the tests share: a machine payload as the contract spells it, a unique name, the check of an error
answer of the sandbox, and waiting for a condition."""

from __future__ import annotations

import secrets
import time

PROBLEM_KEYS = {"Code", "status", "title", "detail", "errors"}


def name(prefix: str = "t") -> str:
    """A name no other test uses (fleets, machines, secrets of the shared sandbox)."""
    return f"{prefix}-{secrets.token_hex(4)}"


def problem(resp, status: int, code: str | None = None) -> dict:
    """The body of the sandbox's error answer ``resp`` (Ravel's shape), after checking its status, its keys and,
    when given, its ``Code``."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert PROBLEM_KEYS <= set(body), body
    assert body["status"] == status and body["detail"], body
    assert isinstance(body["errors"], list)
    if code is not None:
        assert body["Code"] == code, body
    return body


def machine_payload(cmd: list[str] | None = None, *, entrypoint: list[str] | None = None, image: str = "alpine:3",
                    env: list[str] | None = None, restart: dict | None = None, auto_destroy: bool | None = None,
                    stop_config: dict | None = None, skip_start: bool | None = None, region: str = "gra-1") -> dict:
    """A CreateMachinePayload as the contract spells it, optional fields left out."""
    workload: dict = {}
    init = {}
    if cmd is not None:
        init["cmd"] = cmd
    if entrypoint is not None:
        init["entrypoint"] = entrypoint
    if init:
        workload["init"] = init
    if env is not None:
        workload["env"] = env
    if restart is not None:
        workload["restart"] = restart
    if auto_destroy is not None:
        workload["auto_destroy"] = auto_destroy
    config: dict = {"image": image, "guest": {"cpu_kind": "shared", "memory_mb": 256, "cpus": 1}}
    if workload:
        config["workload"] = workload
    if stop_config is not None:
        config["stop_config"] = stop_config
    payload: dict = {"region": region, "config": config}
    if skip_start is not None:
        payload["skip_start"] = skip_start
    return payload


def wait_until(predicate, timeout: float = 10, interval: float = 0.05, message: str = "condition"):
    """Poll `predicate` until it returns something truthy; return it, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class Chunks:
    """A streamed answer given as its chunks (what the log follower reads through ``iter_bytes``), to drive the
    follower without HTTP."""

    def __init__(self, chunks) -> None:
        self.chunks = chunks

    def iter_bytes(self):
        yield from self.chunks
