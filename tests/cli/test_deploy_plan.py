"""The rollout plan (valyent_cli/apps/plan.py), without a server: the order of the steps of each strategy and the
minimum-availability invariants docs/deploy.md promises."""

from __future__ import annotations

import pytest

from valyent_cli.apps.plan import OldMachine, Step, compute, payload_changes, serving_counts
from valyent_cli.apps.spec import max_unavailable
from valyent_cli.cli.errors import UsageError


def olds(n: int, release: int = 1) -> list[OldMachine]:
    return [OldMachine(f"m{i}", release, gateway=True) for i in range(1, n + 1)]


def test_rolling_replaces_batch_by_batch_new_before_old():
    steps = compute(olds(3), count=3, strategy="rolling", max_unavailable=1, gateway=True)
    assert [(s.batch, s.action, s.targets) for s in steps] == [
        (b, action, targets)
        for b, new, old in ((1, "new-1", "m1"), (2, "new-2", "m2"), (3, "new-3", "m3"))
        for action, targets in (("create", (new,)), ("wait", (new,)), ("enable_gateway", (new,)),
                                ("disable_gateway", (old,)), ("stop", (old,)), ("delete", (old,)))
    ]


def test_rolling_in_batches_of_max_unavailable():
    steps = compute(olds(5), count=5, strategy="rolling", max_unavailable=2, gateway=True)
    creates = [s.targets for s in steps if s.action == "create"]
    deletes = [s.targets for s in steps if s.action == "delete"]
    assert creates == [("new-1", "new-2"), ("new-3", "new-4"), ("new-5",)]
    assert deletes == [("m1", "m2"), ("m3", "m4"), ("m5",)]


@pytest.mark.parametrize("count,old,unavailable", [(3, 3, 1), (5, 5, 2), (4, 6, 3), (6, 2, 1), (3, 0, 1)])
def test_rolling_never_serves_fewer_than_count_minus_max_unavailable(count, old, unavailable):
    machines = olds(old)
    steps = compute(machines, count=count, strategy="rolling", max_unavailable=unavailable, gateway=True)
    floor = min(old, count) - unavailable
    assert min(serving_counts(steps, machines)) >= floor
    assert serving_counts(steps, machines)[-1] == count


@pytest.mark.parametrize("strategy", ["bluegreen", "canary"])
def test_bluegreen_and_canary_never_serve_fewer_than_count(strategy):
    machines = olds(4)
    steps = compute(machines, count=4, strategy=strategy, max_unavailable=2, gateway=True)
    assert min(serving_counts(steps, machines)) >= 4
    assert serving_counts(steps, machines)[-1] == 4


def test_bluegreen_creates_all_then_switches_then_removes():
    steps = compute(olds(2), count=2, strategy="bluegreen", max_unavailable=1, gateway=True)
    assert [s.action for s in steps] == ["create", "wait", "enable_gateway", "disable_gateway", "stop", "delete"]
    assert steps[0].targets == ("new-1", "new-2") and steps[-1].targets == ("m1", "m2")


def test_canary_is_one_machine_first_then_rolling():
    steps = compute(olds(5), count=5, strategy="canary", max_unavailable=2, gateway=True)
    assert [s.targets for s in steps if s.action == "create"] == [("new-1",), ("new-2", "new-3"), ("new-4", "new-5")]


def test_immediate_does_not_wait():
    steps = compute(olds(2), count=2, strategy="immediate", max_unavailable=1, gateway=True)
    assert [s.action for s in steps] == ["create", "disable_gateway", "stop", "delete"]


def test_first_deploy_is_one_batch_and_the_release_command_comes_first():
    steps = compute([], count=3, strategy="rolling", max_unavailable=1, gateway=True, release_command=True)
    assert steps[0] == Step("release_command")
    assert [s.action for s in steps[1:]] == ["create", "wait", "enable_gateway"]
    assert steps[1].targets == ("new-1", "new-2", "new-3")


def test_without_a_gateway_no_gateway_step_and_stopped_machines_are_not_stopped_again():
    machines = [OldMachine("a", 1, gateway=False, state="stopped"), OldMachine("b", 1, gateway=False)]
    steps = compute(machines, count=2, strategy="bluegreen", max_unavailable=1, gateway=False)
    assert [(s.action, s.targets) for s in steps] == [
        ("create", ("new-1", "new-2")), ("wait", ("new-1", "new-2")), ("stop", ("b",)), ("delete", ("a", "b"))]


def test_scaling_down_removes_the_extra_old_machines_last():
    steps = compute(olds(3), count=1, strategy="rolling", max_unavailable=1, gateway=True)
    assert [s.targets for s in steps if s.action == "delete"] == [("m1",), ("m2",), ("m3",)]
    assert [s.targets for s in steps if s.action == "create"] == [("new-1",)]


def test_old_machines_go_oldest_release_first():
    machines = [OldMachine("z", 3, True), OldMachine("a", 4, True), OldMachine("m", 2, True)]
    steps = compute(machines, count=3, strategy="rolling", max_unavailable=1, gateway=True)
    assert [s.targets for s in steps if s.action == "delete"] == [("m",), ("z",), ("a",)]


def test_max_unavailable_as_a_percentage():
    assert max_unavailable("33%", 3, "x") == 1
    assert max_unavailable("50%", 10, "x") == 5
    assert max_unavailable("1%", 3, "x") == 1
    assert max_unavailable(2, 3, "x") == 2
    for bad in ("0%", "150%", "abc", 0, True):
        with pytest.raises(UsageError):
            max_unavailable(bad, 3, "--max-unavailable")


def test_payload_changes_name_each_leaf_and_ignore_the_release_label():
    before = {"config": {"image": "a:1", "workload": {"env": ["V=1"]}},
              "metadata": {"labels": {"valyent.release": "1"}}}
    after = {"config": {"image": "a:2", "workload": {"env": ["V=1"]}},
             "metadata": {"labels": {"valyent.release": "2"}}}
    assert payload_changes(before, after) == ['config.image: "a:1" -> "a:2"']
