"""Helpers shared by the tests: run the CLI as a user would, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict, input: str | bytes | None = None, timeout: float = 60, text: bool = True,
            cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Run `python -m valyent_cli ARGS` with `env`; stdout and stderr captured separately (str, or bytes with
    text=False)."""
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if isinstance(input, bytes):
        text = False
    result = subprocess.run(
        [sys.executable, "-m", "valyent_cli", *args],
        env=env, input=input, capture_output=True, timeout=timeout, text=text, cwd=cwd,
    )
    assert_no_token(args, env, result.stdout, result.stderr)
    return result


def assert_no_token(args, env: dict, *outputs: str | bytes | None) -> None:
    """Every CLI run of the suite: the token of its environment never shows in its output, except through
    `auth token` (the one command that prints it). Tokens of 8 characters or fewer are too short to grep for."""
    token = env.get("VALYENT_API_TOKEN") or ""
    if len(token) <= 8:
        return
    words = [a if isinstance(a, str) else os.fsdecode(a) for a in args]
    if any(words[i : i + 2] == ["auth", "token"] for i in range(len(words))):
        return
    for output in outputs:
        if not output:
            continue
        needle = token.encode() if isinstance(output, bytes) else token
        assert needle not in output, f"the API token leaked into the output of `valyent {' '.join(words)}`"


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
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
