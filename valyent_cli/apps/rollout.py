"""A deploy from start to end: what runs, the plan, the release record, the engine, the record's outcome."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from valyent_cli.apps import APP_LABEL, RELEASE_LABEL
from valyent_cli.apps import releases as rel
from valyent_cli.apps.engine import DeployFailed, Engine
from valyent_cli.apps.plan import OldMachine, Plan, Step, compute, payload_changes
from valyent_cli.apps.spec import DeploySpec

if TYPE_CHECKING:
    from valyent_cli.api import Client


def app_machines(client: Client, fleet: str, app: str) -> list[dict[str, Any]]:
    """The app's machines: the fleet's machines (not destroyed) labelled ``valyent.app=APP``."""
    return [m for m in client.machines.list(fleet, labels={APP_LABEL: app})
            if m.get("state") not in ("destroyed", "destroying")]


def release_of(machine: dict[str, Any]) -> int | None:
    try:
        return int(((machine.get("metadata") or {}).get("labels") or {}).get(RELEASE_LABEL, ""))
    except ValueError:
        return None


@dataclass
class Prepared:
    plan: Plan
    releases: rel.Releases
    previous: dict[str, Any] | None  # the newest succeeded release, what runs now
    #: releases recorded as still running: another deploy going on (or one killed before it could record its end)
    unfinished: list[int] = field(default_factory=list)


def prepare(client: Client, fleet: str, spec: DeploySpec, payload: dict[str, Any]) -> Prepared:
    """Read what runs and the records; compute the plan. Changes nothing."""
    running = app_machines(client, fleet, spec.app)
    releases = rel.Releases(client, fleet, spec.app)
    records = releases.list()
    previous = next((r for r in records if r.get("status") == rel.SUCCEEDED), None)
    numbers = [r["release"] for r in records] + [n for n in map(release_of, running) if n is not None]
    to_release = max(numbers, default=0) + 1
    old = [OldMachine.of(m) for m in running]
    gateway = bool(payload.get("enable_machine_gateway"))
    steps = compute(old, count=spec.count, strategy=spec.strategy, max_unavailable=spec.max_unavailable,
                    gateway=gateway, release_command=bool(spec.release_command))
    from_release = previous["release"] if previous else max((m.release for m in old if m.release), default=None)
    plan = Plan(app=spec.app, strategy=spec.strategy, count=spec.count, max_unavailable=spec.max_unavailable,
                to_release=to_release, from_release=from_release, steps=steps, old=old, gateway=gateway,
                changes=payload_changes((previous or {}).get("payload"), payload) if previous else [])
    unfinished = [r["release"] for r in records if r.get("status") == rel.RUNNING]
    return Prepared(plan=plan, releases=releases, previous=previous, unfinished=unfinished)


def execute(client: Client, fleet: str, prepared: Prepared, payload: dict[str, Any], spec: DeploySpec, *,
            report: Callable[[str, Step | None], None], rollback_of: int | None = None,
            on_engine: Callable[[Engine], None] | None = None,
            record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record the release (running), run the plan, record how it ended; the final record. DeployFailed and
    KeyboardInterrupt are raised after the undo and the record (status failed)."""
    plan = prepared.plan
    if record is None:
        record = rel.new_record(spec.app, plan.to_release, payload, spec.strategy, rollback_of=rollback_of)
        prepared.releases.save(record)
    engine = Engine(client, fleet, plan, payload, spec.wait_timeout, report=report,
                    release_command=spec.release_command, previous=prepared.previous)
    if on_engine is not None:
        on_engine(engine)
    try:
        machines = engine.run()
    except DeployFailed as exc:
        record.update(status=rel.FAILED, finished_at=rel.now(), error=exc.message)
        prepared.releases.save(record)
        raise
    except KeyboardInterrupt:
        record.update(status=rel.FAILED, finished_at=rel.now(), error="interrupted (Ctrl-C)")
        prepared.releases.save(record)
        raise
    except BaseException as exc:  # an API error, or the process asked to end (SIGTERM: a CI job cancelled)
        record.update(status=rel.FAILED, finished_at=rel.now(), error=type(exc).__name__ + (f": {exc}" if str(exc) else ""))
        _save_quietly(prepared.releases, record)
        raise
    record.update(status=rel.SUCCEEDED, finished_at=rel.now(), machines=machines)
    prepared.releases.save(record)
    if rollback_of is not None and prepared.previous is not None:
        prepared.releases.update(prepared.previous["release"], status=rel.ROLLED_BACK)
    return record


def _save_quietly(releases: rel.Releases, record: dict[str, Any]) -> None:
    from valyent_cli.api import ValyentError

    try:
        releases.save(record)
    except ValyentError:
        pass  # the API's error that stopped the deploy is the one to show
