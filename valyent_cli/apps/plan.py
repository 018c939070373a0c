"""The rollout plan: the steps that replace what runs by what is wanted, computed without a server.

A plan is a list of :class:`Step`, each an action on machines: old ones by id, new ones by slot (``new-1``...,
ids once the engine created them). The strategies (docs/deploy.md says what each guarantees):

- rolling: per batch of ``max_unavailable``: create that many new machines, wait until they count, enable their
  gateway, disable the gateway of as many old ones, stop them (their stop signal and timeout), delete them;
- canary: a first batch of one, then rolling;
- bluegreen: create every new machine, wait for all, enable all their gateways, disable all the old ones', then
  stop and delete the old ones;
- immediate: create every new machine (gateway on at once), disable, stop and delete every old one; no waiting.

New machines are created with their gateway off and get it once they count (immediate aside), so that no request
reaches a machine that is not ready. An app with no old machine gets one batch whatever the strategy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STRATEGIES = ("rolling", "bluegreen", "canary", "immediate")

#: the actions, in the words the progress and --dry-run use
ACTIONS = {
    "release_command": "run the release command in a one-shot machine of the new version",
    "create": "create",
    "wait": "wait until they count (running, healthy when checked)",
    "enable_gateway": "enable the gateway of",
    "disable_gateway": "disable the gateway of",
    "stop": "stop (stop signal, then its timeout)",
    "delete": "delete",
}


@dataclass(frozen=True)
class Step:
    action: str
    targets: tuple[str, ...] = ()
    batch: int = 0

    def describe(self) -> str:
        words = ACTIONS[self.action]
        return f"{words} {', '.join(self.targets)}" if self.targets else words

    def to_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "action": self.action, "machines": list(self.targets)}


@dataclass
class OldMachine:
    """A machine of the app as it runs now."""

    id: str
    release: int | None = None
    gateway: bool = False
    state: str = "running"

    @classmethod
    def of(cls, machine: dict[str, Any]) -> OldMachine:
        from valyent_cli.apps import RELEASE_LABEL

        labels = ((machine.get("metadata") or {}).get("labels") or {})
        try:
            release = int(labels.get(RELEASE_LABEL, ""))
        except ValueError:
            release = None
        return cls(id=str(machine.get("id")), release=release, gateway=bool(machine.get("gateway_enabled")),
                   state=str(machine.get("state") or ""))


@dataclass
class Plan:
    app: str
    strategy: str
    count: int
    max_unavailable: int
    to_release: int
    from_release: int | None
    steps: list[Step]
    old: list[OldMachine] = field(default_factory=list)
    gateway: bool = False
    changes: list[str] = field(default_factory=list)

    @property
    def new_slots(self) -> list[str]:
        return [f"new-{i + 1}" for i in range(self.count)]

    def to_dict(self) -> dict[str, Any]:
        return {"app": self.app, "strategy": self.strategy, "from_release": self.from_release,
                "to_release": self.to_release, "count": self.count, "max_unavailable": self.max_unavailable,
                "old_machines": [m.id for m in self.old], "changes": self.changes,
                "steps": [s.to_dict() for s in self.steps]}

    def lines(self) -> list[str]:
        """The plan in words, as --dry-run prints it."""
        start = f"release {self.from_release}" if self.from_release is not None else "nothing deployed"
        out = [f"App {self.app}: {start} -> release {self.to_release} ({self.strategy}, {self.count} machine"
               f"{'s' if self.count != 1 else ''}, at most {self.max_unavailable} replaced at once)"]
        out += [f"  {c}" for c in self.changes] or ["  no change in the machine payload"]
        batch = None
        for step in self.steps:
            if step.batch != batch:
                batch = step.batch
                out.append("Before any replacement:" if batch == 0 else f"Batch {batch}:")
            out.append(f"  {step.describe()}")
        return out


def compute(old: list[OldMachine], *, count: int, strategy: str, max_unavailable: int,
            gateway: bool, release_command: bool = False) -> list[Step]:
    """The steps from ``old`` (the app's machines now) to ``count`` machines of the new release."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    if count < 1 or max_unavailable < 1:
        raise ValueError("count and max_unavailable must be at least 1")
    old = sorted(old, key=lambda m: (m.release if m.release is not None else -1, m.id))
    new = [f"new-{i + 1}" for i in range(count)]
    steps: list[Step] = [Step("release_command")] if release_command else []
    if strategy == "immediate":
        return steps + _batch(1, new, old, gateway=gateway, wait=False)
    if strategy == "bluegreen" or not old:
        return steps + _batch(1, new, old, gateway=gateway, wait=True)
    sizes = [1] if strategy == "canary" else []
    total = max(len(new), len(old))
    while sum(sizes) < total:
        sizes.append(max_unavailable)
    at = 0
    for number, size in enumerate(sizes, 1):
        steps += _batch(number, new[at:at + size], old[at:at + size], gateway=gateway, wait=True)
        at += size
    return steps


def _batch(number: int, new: list[str], old: list[OldMachine], *, gateway: bool, wait: bool) -> list[Step]:
    """One batch: the new machines created and counted (and given the gateway), then the old ones removed."""
    steps = []
    if new:
        steps.append(Step("create", tuple(new), number))
        if wait:
            steps.append(Step("wait", tuple(new), number))
            if gateway:
                steps.append(Step("enable_gateway", tuple(new), number))
    served = tuple(m.id for m in old if m.gateway)
    if served:
        steps.append(Step("disable_gateway", served, number))
    running = tuple(m.id for m in old if m.state not in ("stopped", "destroyed", "destroying"))
    if running:
        steps.append(Step("stop", running, number))
    if old:
        steps.append(Step("delete", tuple(m.id for m in old), number))
    return steps


def serving_counts(steps: list[Step], old: list[OldMachine]) -> list[int]:
    """How many machines serve (gateway on, not stopped) after each step, for the availability invariants
    (tests, docs/deploy.md): old machines serve until their gateway goes off; new ones from their enable_gateway
    (immediate: from their creation)."""
    serving = {m.id for m in old if m.gateway}
    immediate = not any(s.action == "wait" for s in steps)
    counts = []
    for step in steps:
        if step.action == "enable_gateway" or (step.action == "create" and immediate):
            serving |= set(step.targets)
        elif step.action in ("disable_gateway", "stop", "delete"):
            serving -= set(step.targets)
        counts.append(len(serving))
    return counts


def payload_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """The differences between two create payloads, one line per leaf: `config.image: a -> b`."""
    if before is None:
        return []
    lines: list[str] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{where}.{key}" if where else str(key))
        elif a != b:
            lines.append(f"{where}: {_show(a)} -> {_show(b)}")

    walk(_without_release(before), _without_release(after), "")
    return lines


def _without_release(payload: dict[str, Any]) -> dict[str, Any]:
    import copy

    from valyent_cli.apps import RELEASE_LABEL

    p = copy.deepcopy(payload)
    labels = (p.get("metadata") or {}).get("labels") or {}
    labels.pop(RELEASE_LABEL, None)
    return p


def _show(value: Any) -> str:
    import json

    return "(unset)" if value is None else json.dumps(value, ensure_ascii=False)
