"""Machines: the compute instances of a fleet, and the bound ``Machine`` object."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from valyent_cli.api._http import httpx

from valyent_cli.api import errors
from valyent_cli.api._resource import Resource, has_labels
from valyent_cli.api._transport import RETRY_STATUSES
from valyent_cli.api.logs import (
    LOGS_ACCEPT, LogFollower, decode_response, iter_entry_batches, iter_entry_blocks, iter_entry_lines,
    open_log_stream,
)
from valyent_cli.api._object import ApiObject
from valyent_cli.api.constants import DEFAULT_EXEC_TIMEOUT_MS, STATES

if TYPE_CHECKING:  # annotations only: building the TypedDicts of api/types.py costs start-up time
    from valyent_cli.api.initd import FileSystem
    from valyent_cli.api.types import CreateMachinePayload, ExecResult, LogEntry, MachineEvent, StopConfig

#: the longest wait the server holds one long poll for
MAX_WAIT_POLL = 60


class Machine(ApiObject):
    """A machine as the API returned it, with methods that act on it.

    Keys: ``id``, ``namespace``, ``fleet`` (the fleet id), ``instance_id``, ``machine_version``, ``region``,
    ``config``, ``created_at``, ``updated_at``, ``events``, ``state``, and maybe ``health``, ``gateway_enabled``.
    """

    __slots__ = ("_fleet_ref", "notices")

    def __init__(self, data: dict[str, Any] | None = None, client: Any = None, fleet: str | None = None) -> None:
        super().__init__(data, client)
        # The fleet the machine was fetched through: used when the answer lacks its `fleet` key.
        self._fleet_ref = fleet
        #: what the server said about the request beside the object (the sandbox's `Valyent-Notice` header)
        self.notices: list[str] = []

    @property
    def _m(self) -> Machines:
        return self._client.machines

    @property
    def _fleet(self) -> str:
        fleet = self.get("fleet") or self.get("fleet_id") or self._fleet_ref
        if not fleet:
            raise errors.InvalidArgument("this machine object does not say which fleet it belongs to")
        return fleet

    def refresh(self) -> Machine:
        return self._m.get(self._fleet, self["id"])

    def start(self) -> None:
        self._m.start(self._fleet, self["id"])

    def stop(self, signal: str | StopConfig | None = None, timeout: int | None = None) -> None:
        """``stop()``, ``stop("SIGINT", 10)``, or as the seed, ``stop({"timeout": 30, "signal": "SIGTERM"})``."""
        self._m.stop(self._fleet, self["id"], signal=signal, timeout=timeout)

    def delete(self, force: bool = False) -> None:
        self._m.delete(self._fleet, self["id"], force=force)

    def wait(self, status: str = "running", timeout: float = 60) -> None:
        self._m.wait(self._fleet, self["id"], status, timeout)

    def wait_healthy(self, timeout: float = 60) -> Machine:
        return self._m.wait_healthy(self._fleet, self["id"], timeout)

    def versions(self) -> list[dict[str, Any]]:
        return self._m.versions(self._fleet, self["id"])

    def update_metadata(self, metadata: dict[str, Any]) -> Machine:
        return self._m.update_metadata(self._fleet, self["id"], metadata)

    def events(self) -> list[MachineEvent]:
        return self._m.events(self._fleet, self["id"])

    def logs(self) -> list[LogEntry]:
        return self._m.logs(self._fleet, self["id"])

    def iter_logs(self) -> Iterator[LogEntry]:
        return self._m.iter_logs(self._fleet, self["id"])

    def follow_logs(self, **kwargs: Any) -> Iterator[LogEntry]:
        return self._m.follow_logs(self._fleet, self["id"], **kwargs)

    def exec(self, cmd: list[str], timeout_ms: int | None = None) -> ExecResult:
        return self._m.exec(self._fleet, self["id"], cmd, timeout_ms=timeout_ms)

    def enable_gateway(self) -> None:
        self._m.enable_gateway(self._fleet, self["id"])

    def disable_gateway(self) -> None:
        self._m.disable_gateway(self._fleet, self["id"])

    @property
    def fs(self) -> FileSystem:
        return self._client.fs(self["id"])

    # The seed SDK's names.
    get_logs = logs
    list_events = events


class Machines(Resource):
    def _url(self, fleet: str, *rest: Any) -> str:
        return self._client.url("fleets", fleet, "machines", *rest)

    def create(self, fleet: str, payload: CreateMachinePayload | dict[str, Any]) -> Machine:
        """Create (and, unless ``skip_start``, start) a machine. Never sent twice once it reached the server.

        ``config.auto_destroy`` (where the seed README lists it) is sent inside ``config.workload``, where the
        API reads it.
        """
        response = self._client.request("POST", self._url(fleet), json=_wire_payload(payload))
        machine = Machine(self._object(self._json(response), "machine"), self._client, fleet)
        machine.notices = response.headers.get_list("valyent-notice")
        return machine

    def list(self, fleet: str, destroyed: bool = False, labels: dict[str, str] | None = None) -> list[Machine]:
        """The fleet's machines; with ``labels``, only those carrying all of them (Ravel has no label filter on
        this route: the answer is filtered here)."""
        return [Machine(item, self._client, fleet) for item in self.list_data(fleet, destroyed, labels)]

    def list_data(self, fleet: str, destroyed: bool = False, labels: dict[str, str] | None = None
                  ) -> list[dict[str, Any]]:
        """What ``list`` returns, as the plain dicts the API sent (checked and filtered the same way, not wrapped
        in ``Machine`` objects): for printing them verbatim, as ``machines list --json`` does, thousands at a time."""
        return self.list_answer(fleet, destroyed, labels)[0]

    def list_answer(self, fleet: str, destroyed: bool = False, labels: dict[str, str] | None = None
                    ) -> tuple[list[dict[str, Any]], bytes | None]:
        """``list_data``, and the body of the answer as received when it holds exactly that list (no ``labels``
        to filter by, not ``null``): for writing it out without encoding it again (`machines list --json` to a
        pipe: ~28 ms for 5,000 machines). The list is checked either way."""
        data, body = self._client.get_json_body(self._url(fleet), params={"destroyed": True} if destroyed else None)
        items = self._array(data, "machines")
        if labels:
            return [item for item in items if has_labels(item, labels)], None
        return items, (body if data is not None else None)

    def versions(self, fleet: str, machine: str) -> list[dict[str, Any]]:
        """The machine's versions: ``[{id, machine_id, namespace, config, resources{cpus_mhz, memory_mb}}]``."""
        return self._array(self._client.get_json(self._url(fleet, machine, "versions")), "machine versions")

    def update_metadata(self, fleet: str, machine: str, metadata: dict[str, Any]) -> Machine:
        """Replace the machine's metadata (``{"labels": {...}, "annotations": {...}}``); returns the machine."""
        data = self._client.send_json("PATCH", self._url(fleet, machine, "metadata"), json={"metadata": metadata},
                                      idempotent=True)
        return Machine(self._object(data, "machine"), self._client, fleet)

    def get(self, fleet: str, machine: str) -> Machine:
        return Machine(self._object(self._client.get_json(self._url(fleet, machine)), "machine"), self._client, fleet)

    def start(self, fleet: str, machine: str) -> None:
        self._client.request("POST", self._url(fleet, machine, "start"), idempotent=True)

    def stop(
        self, fleet: str, machine: str, signal: str | StopConfig | None = None, timeout: int | None = None
    ) -> None:
        """Stop a machine: ``signal`` (e.g. ``SIGTERM``) and ``timeout`` (seconds before it is killed) are optional;
        a StopConfig dict ``{"signal": ..., "timeout": ...}`` is accepted in place of ``signal``, as in the seed."""
        if isinstance(signal, dict):
            config = dict(signal)
            signal = config.get("signal")
            timeout = config.get("timeout", timeout)
        body = {"signal": signal, "timeout": timeout}
        self._client.request(
            "POST",
            self._url(fleet, machine, "stop"),
            json=body if any(v is not None for v in body.values()) else None,
            idempotent=True,
            timeout=httpx.Timeout(self._client.timeout, read=self._client.timeout + (timeout or 0)),
        )

    def delete(self, fleet: str, machine: str, force: bool = False) -> None:
        self._client.request("DELETE", self._url(fleet, machine), params={"force": force})

    def wait(self, fleet: str, machine: str, status: str = "running", timeout: float = 60) -> None:
        """Wait until the machine reaches ``status`` (running, stopped or destroyed).

        Any ``timeout`` (seconds) works: the server holds a long poll of at most 60 s, so a longer wait loops it.
        Raises :class:`~valyent_cli.api.errors.TimeoutError` when the state is not reached in time.
        """
        status = str(status)
        if status not in STATES:  # the values of types.WAITABLE_STATES
            raise errors.InvalidArgument(f"cannot wait for {status!r}: choose one of running, stopped, destroyed")
        if timeout <= 0:
            raise errors.InvalidArgument("the wait timeout must be positive")
        # Two clocks bound the wait: the wall clock, and the time the server says it waited (each 408 ends a poll
        # of `poll` seconds). The second keeps the loop exact when a poll comes back early.
        deadline = time.monotonic() + timeout
        budget = float(timeout)
        while True:
            remaining = min(deadline - time.monotonic(), budget)
            poll = max(1, min(MAX_WAIT_POLL, math.ceil(remaining - 1e-9)))
            try:
                self._client.request(
                    "GET",
                    self._url(fleet, machine, "wait"),
                    params={"status": status, "timeout": poll},
                    retry_statuses=RETRY_STATUSES - {408},
                    timeout=httpx.Timeout(self._client.timeout, read=poll + self._client.timeout),
                )
                return
            except errors.NotFound:
                if status == "destroyed":  # Ravel's wait reads no destroyed machine (a 404): it is destroyed
                    return
                raise
            except errors.DeadlineExceeded:
                budget -= poll
                if budget <= 0 or time.monotonic() >= deadline - 0.05:
                    raise errors.TimeoutError(
                        f"machine {machine} did not reach {status!r} within {_seconds(timeout)}"
                    ) from None

    def wait_healthy(self, fleet: str, machine: str, timeout: float = 60, interval: float = 1.0) -> Machine:
        """Poll the machine until its ``health`` is ``healthy``; returns it.

        Raises :class:`~valyent_cli.api.errors.TimeoutError` when it is not healthy in time, and
        :class:`~valyent_cli.api.errors.InvalidArgument` when the machine has no health check (nothing to wait for).
        """
        if timeout <= 0:
            raise errors.InvalidArgument("the wait timeout must be positive")
        deadline = time.monotonic() + timeout
        delay = min(0.2, interval)
        while True:
            current = self.get(fleet, machine)
            health = current.get("health")
            if health == "healthy":
                return current
            workload = ((current.get("config") or {}).get("workload") or {})
            if not workload.get("health_check") and health in (None, "", "unknown"):
                raise errors.InvalidArgument(f"machine {machine} has no health check: there is no health to wait for")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise errors.TimeoutError(
                    f"machine {machine} is not healthy after {_seconds(timeout)} (health: {health or 'unknown'})"
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, interval)

    def events(self, fleet: str, machine: str) -> list[MachineEvent]:
        return self._array(self._client.get_json(self._url(fleet, machine, "events")), "events")  # type: ignore[return-value]

    def iter_logs(self, fleet: str, machine: str) -> Iterator[LogEntry]:
        """The log so far, streamed entry by entry (NDJSON or a JSON array, whichever the server sends)."""
        with self._client.stream(
            "GET", self._url(fleet, machine, "logs"), headers={"Accept": LOGS_ACCEPT}
        ) as response:
            yield from decode_response(response)  # type: ignore[misc]

    def iter_log_lines(self, fleet: str, machine: str) -> Iterator[bytes]:
        """The log so far, streamed as raw JSON lines, one entry a line (see ``logs.iter_entry_lines``)."""
        with self._client.stream(
            "GET", self._url(fleet, machine, "logs"), headers={"Accept": LOGS_ACCEPT}
        ) as response:
            yield from iter_entry_lines(response)

    def iter_log_line_batches(self, fleet: str, machine: str) -> Iterator[list[bytes]]:
        """``iter_log_lines`` a network read at a time (see ``logs.iter_entry_batches``)."""
        with self._client.stream(
            "GET", self._url(fleet, machine, "logs"), headers={"Accept": LOGS_ACCEPT}
        ) as response:
            yield from iter_entry_batches(response)

    def iter_log_blocks(self, fleet: str, machine: str) -> Iterator[bytes]:
        """The lines of ``iter_log_lines`` as NDJSON blocks, a network read at a time, each line ending with a
        newline (see ``logs.iter_entry_blocks``): for passing a long history on or decoding it a block at once."""
        with self._client.stream(
            "GET", self._url(fleet, machine, "logs"), headers={"Accept": LOGS_ACCEPT}
        ) as response:
            yield from iter_entry_blocks(response)

    def logs(self, fleet: str, machine: str) -> list[LogEntry]:
        return list(self.iter_logs(fleet, machine))

    def follow_logs(
        self,
        fleet: str,
        machine: str,
        *,
        max_failures: int = 5,
        idle_timeout: float | None = 120.0,
        on_reconnect: Any = None,
        until_destroyed: bool = True,
        backoff_base: float = 0.25,
        backoff_max: float = 5.0,
        healthy_after: float = 10.0,
    ) -> LogFollower:
        """The live log: history, then each new entry as the machine writes it, until the machine is destroyed.

        Survives dropped streams: see :class:`~valyent_cli.api.logs.LogFollower`. Stop iterating (``break``) to
        stop following; the connection is closed then.
        """

        def finished() -> bool:
            return self.get(fleet, machine).get("state") == "destroyed"

        return LogFollower(
            open_log_stream(self._client, fleet, machine),
            max_failures=max_failures,
            idle_timeout=idle_timeout,
            is_finished=finished if until_destroyed else None,
            on_reconnect=on_reconnect,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            healthy_after=healthy_after,
        )

    # The seed SDK's name for the live stream.
    get_logs_stream = follow_logs

    def exec(self, fleet: str, machine: str, cmd: list[str], timeout_ms: int | None = None) -> ExecResult:
        """Run a command in the machine; returns ``{"stdout", "stderr", "exit_code"}``. Never sent twice.
        ``timeout_ms`` defaults to ``DEFAULT_EXEC_TIMEOUT_MS`` (30 s): Ravel requires it."""
        if timeout_ms is None:
            timeout_ms = DEFAULT_EXEC_TIMEOUT_MS
        read = self._client.timeout + timeout_ms / 1000.0
        response = self._client.request(
            "POST",
            self._url(fleet, machine, "exec"),
            json={"cmd": list(cmd), "timeout_ms": timeout_ms},
            timeout=httpx.Timeout(self._client.timeout, read=read),
        )
        if not response.content.strip():
            return exec_result_from_headers(response.headers)  # type: ignore[return-value]
        return ExecOutput(self._object(self._json(response), "exec result"))  # type: ignore[return-value]

    def enable_gateway(self, fleet: str, machine: str) -> None:
        self._client.request("POST", self._url(fleet, machine, "gateway", "enable"), idempotent=True)

    def disable_gateway(self, fleet: str, machine: str) -> None:
        self._client.request("POST", self._url(fleet, machine, "gateway", "disable"), idempotent=True)


class ExecOutput(dict):
    """An exec result (``stdout``, ``stderr``, ``exit_code``); ``from_headers`` is True when the server sent it
    as response headers, whose values cannot hold newlines (see ``exec_result_from_headers``)."""

    from_headers = False


def exec_result_from_headers(headers: Any) -> ExecOutput:
    """A stock Ravel's exec answer: its handler returns the result struct as huma's output type, which has no
    ``Body`` field, so huma answers 204 with the fields as the headers ``Stdout``, ``Stderr`` (absent when empty)
    and ``Exitcode``. Header values lose their newlines on the way."""
    code = headers.get("exitcode")
    if code is None:
        raise errors.ResponseError("the server answered the exec with no body and no Exitcode header")
    try:
        exit_code = int(code.strip())
    except ValueError:
        raise errors.ResponseError(f"the server's Exitcode header is not a number: {code[:40]!r}") from None
    result = ExecOutput(stdout=headers.get("stdout", ""), stderr=headers.get("stderr", ""), exit_code=exit_code)
    result.from_headers = True
    return result


def _wire_payload(payload: Any) -> Any:
    """The create payload as the API reads it: ``config.auto_destroy`` moved into ``config.workload``."""
    if not isinstance(payload, dict):
        return payload
    config = payload.get("config")
    if not isinstance(config, dict) or "auto_destroy" not in config:
        return payload
    config = dict(config)
    auto_destroy = config.pop("auto_destroy")
    workload = dict(config.get("workload") or {})
    workload.setdefault("auto_destroy", auto_destroy)
    config["workload"] = workload
    return {**payload, "config": config}


def _seconds(value: float) -> str:
    return f"{value:g} s"
