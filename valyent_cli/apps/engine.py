"""The one engine that runs a rollout plan (:mod:`plan`) through the public API, and undoes it when it fails.

Every step is an API call (create, get, gateway enable/disable, stop, wait, delete), so the engine works the same
on Ravel and on the sandbox. A new machine counts once it is running and, when it has a health check, healthy;
without a health check it must also stay up for :data:`SETTLE` seconds (a command that fails at once exits within
moments). A machine that stops, fails to start or turns unhealthy, or does not count within ``wait_timeout``,
fails the deploy: the engine gives the gateway back to the old machines it had taken it from (starting them again
if it had stopped them), removes every new machine of the release the way it removes old ones (gateway off, stop
with its stop signal and timeout, delete) and raises :class:`DeployFailed` with the failing machine's last log
lines and its health check's output. Ctrl-C undoes the same way, then the KeyboardInterrupt goes on.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from valyent_cli.apps import APP_LABEL, RELEASE_COMMAND_LABEL, RELEASE_LABEL
from valyent_cli.apps.plan import Plan, Step

if TYPE_CHECKING:
    from valyent_cli.api import Client

#: seconds a machine without a health check must stay running before it counts
SETTLE = 1.0
#: seconds between two looks at a machine being waited for
POLL = 0.25
#: how long a release command may run (seconds)
RELEASE_COMMAND_TIMEOUT = 15 * 60
#: log lines shown for a machine that failed
LOG_LINES = 20
_GONE = ("stopped", "destroying", "destroyed")


class DeployFailed(Exception):
    """The deploy stopped: what failed, and what the failing machine said."""

    def __init__(self, message: str, *, machine: str | None = None, logs: list[str] | None = None,
                 health: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.machine = machine
        self.logs = logs or []
        self.health = health


@dataclass
class Tracked:
    """A machine the engine acts on, as the progress view shows it."""

    name: str  # an old machine's id, or a new machine's slot until it has an id
    role: str  # "old" or "new"
    id: str | None = None
    state: str = "-"
    health: str = "-"
    gateway: bool = False
    counted: bool = False


@dataclass
class Engine:
    client: Client
    fleet: str
    plan: Plan
    payload: dict[str, Any]
    wait_timeout: float
    report: Callable[[str, Step | None], None] = lambda message, step: None
    release_command: list[str] | None = None
    #: the release the old machines belong to, with its recorded payload: what the undo re-creates old machines
    #: from when earlier batches had already removed some
    previous: dict[str, Any] | None = None
    machines: dict[str, Tracked] = field(default_factory=dict)
    _taken: set[str] = field(default_factory=set)  # old machines whose gateway the engine turned off
    _stopped: set[str] = field(default_factory=set)
    _deleted: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        for m in self.plan.old:
            self.machines[m.id] = Tracked(m.id, "old", m.id, m.state, "-", m.gateway, True)

    # -- the plan ----------------------------------------------------------------------------------------------
    def run(self) -> list[str]:
        """Run every step; the ids of the new machines. On failure or Ctrl-C: undo, then raise."""
        try:
            for step in self.plan.steps:
                self.report(step.describe(), step)
                getattr(self, f"_{step.action}")(step)
        except BaseException as exc:
            self.report(f"undoing release {self.plan.to_release}: {exc or type(exc).__name__}", None)
            self.undo()
            raise
        return [self.machines[s].id for s in self.plan.new_slots if self.machines.get(s) and self.machines[s].id]

    def _ids(self, step: Step) -> list[str]:
        return [str(self.machines[t].id) for t in step.targets]

    def new_payload(self, base: dict[str, Any] | None = None, release: int | None = None) -> dict[str, Any]:
        payload = copy.deepcopy(self.payload if base is None else base)
        payload.pop("skip_start", None)
        labels = payload.setdefault("metadata", {}).setdefault("labels", {})
        labels[APP_LABEL] = self.plan.app
        labels[RELEASE_LABEL] = str(self.plan.to_release if release is None else release)
        if payload.get("enable_machine_gateway") and self.plan.strategy != "immediate":
            payload["enable_machine_gateway"] = False  # on once the machine counts: no request before it is ready
        return payload

    def _create(self, step: Step, payload: dict[str, Any] | None = None, role: str = "new") -> None:
        payload = payload or self.new_payload()
        for slot in step.targets:
            tracked = self.machines.setdefault(slot, Tracked(slot, role))
            machine = self.client.machines.create(self.fleet, payload)
            tracked.id = str(machine.get("id"))
            tracked.state = str(machine.get("state") or "created")
            tracked.gateway = bool(payload.get("enable_machine_gateway"))
            self.report(f"created {tracked.id}", step)

    def _wait(self, step: Step) -> None:
        from valyent_cli.api import NotFound

        deadline = time.monotonic() + self.wait_timeout
        first_seen: dict[str, float] = {}
        pending = list(step.targets)
        while pending:
            for slot in list(pending):
                tracked = self.machines[slot]
                try:
                    machine = self.client.machines.get(self.fleet, str(tracked.id))
                except NotFound:
                    raise DeployFailed(f"machine {tracked.id} is gone (destroyed while it was awaited)",
                                       machine=tracked.id) from None
                changed = (tracked.state, tracked.health) != (machine.get("state"), machine.get("health") or "-")
                tracked.state, tracked.health = str(machine.get("state")), str(machine.get("health") or "-")
                checked = bool(((machine.get("config") or {}).get("workload") or {}).get("health_check"))
                problem = self._problem(machine, checked)
                if problem:
                    raise self._failure(tracked, f"machine {tracked.id} {problem}", checked)
                if tracked.state == "running" and (not checked or tracked.health == "healthy"):
                    since = first_seen.setdefault(slot, time.monotonic())
                    if checked or time.monotonic() - since >= SETTLE:
                        exited = self._exited(str(tracked.id))
                        if exited:
                            raise self._failure(tracked, f"machine {tracked.id} {exited}", checked)
                        tracked.counted = True
                        pending.remove(slot)
                        self.report(f"{tracked.id} counts", step)
                        continue
                else:
                    first_seen.pop(slot, None)
                if changed:
                    self.report(f"{tracked.id}: {tracked.state}, health {tracked.health}", step)
            if pending and time.monotonic() >= deadline:
                tracked = self.machines[pending[0]]
                checked = bool(((self.payload.get("config") or {}).get("workload") or {}).get("health_check"))
                want = "running and healthy" if checked else "running"
                raise self._failure(tracked, f"machine {tracked.id} was not {want} within {self.wait_timeout:g} s "
                                             f"(state {tracked.state}, health {tracked.health})", checked)
            if pending:
                time.sleep(POLL)

    @staticmethod
    def _problem(machine: dict[str, Any], checked: bool) -> str | None:
        state = str(machine.get("state"))
        if state in _GONE or state == "failed":
            return f"is {state}: it exited or could not start"
        if checked and machine.get("health") == "unhealthy":
            return "is unhealthy: its health check fails"
        return None

    def _exited(self, machine_id: str) -> str | None:
        from valyent_cli.api import ValyentError

        try:
            events = self.client.machines.events(self.fleet, machine_id)
        except ValyentError:
            return None
        for event in events:
            if event.get("type") in ("machine.exited", "machine.start_failed", "machine.prepare_failed"):
                return f"could not stay up ({event.get('type')})"
        return None

    def _enable_gateway(self, step: Step) -> None:
        for slot in step.targets:
            tracked = self.machines[slot]
            self.client.machines.enable_gateway(self.fleet, str(tracked.id))
            tracked.gateway = True
        self.report(f"gateway on: {', '.join(self._ids(step))}", step)

    def _disable_gateway(self, step: Step) -> None:
        for machine_id in self._ids(step):
            self._taken.add(machine_id)
            self.client.machines.disable_gateway(self.fleet, machine_id)
            self.machines[machine_id].gateway = False
        self.report(f"gateway off: {', '.join(self._ids(step))}", step)

    def _stop(self, step: Step) -> None:
        self._stop_ids(self._ids(step), step)

    def _stop_ids(self, ids: list[str], step: Step | None) -> None:
        """Stop (each machine's own stop signal, then its stop timeout) and wait until they have stopped."""
        from valyent_cli.api import NotFound, ValyentError

        for machine_id in ids:
            self._stopped.add(machine_id)
            try:
                self.client.machines.stop(self.fleet, machine_id)
            except NotFound:
                continue
            except ValyentError:
                pass  # already stopped or stopping: the wait below says
        for machine_id in ids:
            try:
                self.client.machines.wait(self.fleet, machine_id, "stopped", 90)
            except NotFound:
                pass
            except ValyentError as exc:  # it did not stop in time: the delete (forced) ends it
                self.report(f"{machine_id} did not stop ({exc}): deleting it anyway", step)
            if machine_id in self.machines:
                self.machines[machine_id].state = "stopped"
        if ids:
            self.report(f"stopped {', '.join(ids)}", step)

    def _delete(self, step: Step) -> None:
        self._delete_ids(self._ids(step), step)

    def _delete_ids(self, ids: list[str], step: Step | None) -> None:
        from valyent_cli.api import NotFound

        for machine_id in ids:
            try:
                self.client.machines.delete(self.fleet, machine_id, force=True)
            except NotFound:
                pass
            self._deleted.add(machine_id)
            if machine_id in self.machines:
                self.machines[machine_id].state = "destroyed"
        if ids:
            self.report(f"deleted {', '.join(ids)}", step)

    # -- the release command -------------------------------------------------------------------------------
    def _release_command(self, step: Step) -> None:
        from valyent_cli.api import ValyentError
        from valyent_cli.cli.exitstatus import exit_code_of, ordered

        payload = copy.deepcopy(self.payload)
        payload.pop("skip_start", None)
        payload["enable_machine_gateway"] = False
        workload = payload.setdefault("config", {}).setdefault("workload", {})
        workload.setdefault("init", {})["cmd"] = list(self.release_command or [])
        workload["restart"] = {"policy": "never"}
        workload.pop("health_check", None)
        payload["metadata"] = {"labels": {RELEASE_COMMAND_LABEL: str(self.plan.to_release)}}
        machine = self.client.machines.create(self.fleet, payload)
        machine_id = str(machine.get("id"))
        self.report(f"release command in {machine_id}: {' '.join(self.release_command or [])}", step)
        deadline = time.monotonic() + RELEASE_COMMAND_TIMEOUT
        ends: list[dict[str, Any]] = []
        try:
            code = None
            while True:
                events = ordered(list(self.client.machines.events(self.fleet, machine_id)))
                ends = [e for e in events if e.get("type") in ("machine.exited", "machine.start_failed",
                                                               "machine.prepare_failed")]
                if ends:
                    end = ends[-1]
                    code = exit_code_of(end) if end.get("type") == "machine.exited" else None
                    break
                if time.monotonic() >= deadline:
                    break
                try:
                    self.client.machines.wait(self.fleet, machine_id, "stopped", 30)
                except ValyentError:
                    time.sleep(POLL)
            if code != 0:
                what = "did not finish in time" if not ends else (
                    f"exited with code {code}" if code is not None else "could not start")
                raise DeployFailed(f"the release command {what}: no machine was replaced", machine=machine_id,
                                   logs=self._logs(machine_id))
            self.report(f"release command succeeded in {machine_id}", step)
        finally:
            if not ends:  # still running (timed out, Ctrl-C): stop it before it goes
                self._stop_ids([machine_id], None)
            self._delete_ids([machine_id], None)

    # -- failure -------------------------------------------------------------------------------------------
    def _logs(self, machine_id: str) -> list[str]:
        from valyent_cli.api import ValyentError

        try:
            entries = self.client.machines.logs(self.fleet, machine_id)
        except ValyentError:
            return []
        return [str(e.get("message", "")) for e in entries[-LOG_LINES:]]

    def _failure(self, tracked: Tracked, message: str, checked: bool) -> DeployFailed:
        """What the failing machine says (its log's tail; its health check's output, run once more), read before
        the undo deletes it."""
        health = None
        if checked:
            health = self._health_output(str(tracked.id))
        return DeployFailed(message, machine=tracked.id, logs=self._logs(str(tracked.id)), health=health)

    def _health_output(self, machine_id: str) -> str | None:
        from valyent_cli.api import ValyentError

        check = ((self.payload.get("config") or {}).get("workload") or {}).get("health_check") or {}
        if not check.get("exec"):
            return None
        try:
            result = self.client.machines.exec(self.fleet, machine_id, list(check["exec"]),
                                               timeout_ms=int(check.get("timeout") or 5) * 1000)
        except ValyentError as exc:
            return f"(could not run it: {exc})"
        text = "\n".join(x for x in (result.get("stdout"), result.get("stderr")) if x).strip()
        return f"exit code {result.get('exit_code')}" + (f": {text}" if text else "")

    def undo(self) -> None:
        """Give the old machines back the gateway (restarting any stopped but not deleted), then remove the new
        machines of this release gracefully. Each step is tried on its own: one error does not stop the rest."""
        from valyent_cli.api import ValyentError

        for machine_id in sorted(self._taken - self._deleted):
            try:
                if machine_id in self._stopped:
                    self.client.machines.start(self.fleet, machine_id)
                    self.client.machines.wait(self.fleet, machine_id, "running", 60)
                self.client.machines.enable_gateway(self.fleet, machine_id)
                self.machines[machine_id].gateway = True
                self.report(f"gateway back on {machine_id}", None)
            except ValyentError as exc:
                self.report(f"could not give {machine_id} its gateway back: {exc}", None)
        self._restore()
        new = [str(t.id) for t in self.machines.values() if t.role == "new" and t.id and t.id not in self._deleted]
        for machine_id in new:
            try:
                self.client.machines.disable_gateway(self.fleet, machine_id)
            except ValyentError:
                pass
        new += self._untracked()
        try:
            self._stop_ids(new, None)
        except ValyentError as exc:
            self.report(f"could not stop every new machine: {exc}", None)
        for machine_id in new:
            try:
                self._delete_ids([machine_id], None)
            except ValyentError as exc:
                self.report(f"could not delete {machine_id}: {exc}", None)

    def _untracked(self) -> list[str]:
        """Machines of this release the engine has no id of: created by a request that a Ctrl-C cut before its
        answer came. Found by their labels."""
        from valyent_cli.api import ValyentError

        known = {t.id for t in self.machines.values()}
        try:
            found = self.client.machines.list(self.fleet, labels={APP_LABEL: self.plan.app,
                                                                  RELEASE_LABEL: str(self.plan.to_release)})
        except ValyentError:
            return []
        return [str(m.get("id")) for m in found
                if m.get("id") not in known and m.get("state") not in ("destroyed", "destroying")]

    def _restore(self) -> None:
        """Earlier batches removed old machines: as many machines of the previous release are created again from
        its recorded payload (and counted, and given the gateway) before the new ones go, so that the app does
        not end with fewer machines than it had. Without a record of that release, a note says so."""
        from valyent_cli.api import ValyentError

        old_ids = {m.id for m in self.plan.old}
        removed = len(old_ids & self._deleted)
        if not removed:
            return
        if not self.previous or not isinstance(self.previous.get("payload"), dict):
            self.report(f"{removed} old machine(s) were removed and no record of their release is left to "
                        "re-create them from", None)
            return
        slots = tuple(f"restore-{i + 1}" for i in range(removed))
        step = Step("create", slots, 0)
        gateway = bool(self.previous["payload"].get("enable_machine_gateway"))
        payload = self.new_payload(self.previous["payload"], int(self.previous["release"]))
        try:
            self._create(step, payload, role="restore")
            self._wait(Step("wait", slots, 0))
            if gateway:
                self._enable_gateway(Step("enable_gateway", slots, 0))
        except (DeployFailed, ValyentError) as exc:
            self.report(f"could not re-create the previous release's machines: {exc}", None)
