"""Ravel's features in the sandbox, driven through the CLI as a user would (issue 12's tests): a secret visible to
`exec -- printenv` and in no output, `list --label` selecting, health turning unhealthy then healthy when the checked
file appears, a volume's file read by a second machine after the first was deleted."""

from __future__ import annotations

import json
import uuid

import pytest

from support.cli import ok, run_inproc

from support.util import wait_until


@pytest.fixture()
def env(cli_env):
    # the sandbox's own namespace, as `local start` writes it into the local profile
    return {**cli_env, "VALYENT_FLEET": "default", "VALYENT_NAMESPACE": "default"}


def create(env, *args):
    mid = ok(run_inproc("machines", "create", "--image", "alpine", "-q", *args, env=env)).stdout.strip()
    ok(run_inproc("machines", "wait", mid, "--state", "running", "--timeout", "30s", env=env))
    return mid


def show(env, mid):
    return json.loads(ok(run_inproc("machines", "show", mid, "--json", env=env)).stdout)


def test_a_secret_reaches_the_environment_and_no_output(env):
    name, value = f"api-key-{uuid.uuid4().hex[:6]}", f"v-{uuid.uuid4().hex}"
    outputs = [ok(run_inproc("secrets", "set", name, input=value + "\n", env=env))]
    outputs.append(ok(run_inproc("secrets", "list", env=env)))
    outputs.append(ok(run_inproc("secrets", "list", "--json", env=env)))
    assert name in outputs[-1].stdout
    mid = create(env, "--secret", f"{name}:API_KEY", "--", "sleep", "600")
    printed = ok(run_inproc("machines", "exec", mid, "--", "printenv", "API_KEY", env=env))
    assert printed.stdout == value + "\n"
    outputs += [ok(run_inproc("machines", "show", mid, env=env)), ok(run_inproc("machines", "show", mid, "--json", env=env)),
                ok(run_inproc("machines", "list", "--json", env=env)), ok(run_inproc("logs", mid, env=env)),
                ok(run_inproc("machines", "events", mid, "--json", env=env))]
    for result in outputs:
        assert value not in result.stdout + result.stderr, result.args
    ok(run_inproc("machines", "delete", mid, "--force", "--yes", env=env))
    ok(run_inproc("secrets", "delete", name, "--yes", env=env))


def test_list_label_selects(env):
    tag = uuid.uuid4().hex[:8]
    web = create(env, "--label", f"run={tag}", "--label", "role=web", "--", "sleep", "600")
    db = create(env, "--label", f"run={tag}", "--label", "role=db", "--", "sleep", "600")
    listed = ok(run_inproc("machines", "list", "-q", "--label", f"run={tag}", "--label", "role=web", env=env))
    assert listed.stdout.split() == [web]
    listed = ok(run_inproc("machines", "list", "-q", "--label", f"run={tag}", env=env))
    assert sorted(listed.stdout.split()) == sorted([web, db])
    for mid in (web, db):
        ok(run_inproc("machines", "delete", mid, "--force", "--yes", env=env))


def test_health_turns_unhealthy_then_healthy_when_the_file_appears(env, tmp_path):
    mid = create(env, "--health-cmd", "test -e /ready", "--health-interval", "1s", "--health-timeout", "2s",
                 "--health-retries", "2", "--", "sleep", "600")
    wait_until(lambda: show(env, mid).get("health") == "unhealthy", timeout=30, message="unhealthy")
    ready = tmp_path / "ready"
    ready.write_text("yes\n")
    ok(run_inproc("fs", "put", mid, str(ready), "/ready", env=env))
    ok(run_inproc("machines", "wait", mid, "--healthy", "--timeout", "30s", env=env))
    assert show(env, mid)["health"] == "healthy"
    ok(run_inproc("machines", "delete", mid, "--force", "--yes", env=env))


def test_a_volumes_file_is_read_by_a_second_machine_after_the_first_is_deleted(env):
    vol = f"data-{uuid.uuid4().hex[:8]}"
    first = create(env, "--volume", f"{vol}:/data", "--", "sh", "-c", "echo persisted > /data/note; sleep 600")
    wait_until(lambda: run_inproc("fs", "cat", first, "/data/note", env=env).stdout == "persisted\n",
               message="the first machine's file")
    ok(run_inproc("machines", "delete", first, "--force", "--yes", env=env))
    second = create(env, "--volume", f"{vol}:/mnt/again", "--", "sleep", "600")
    assert ok(run_inproc("machines", "exec", second, "--", "cat", "/mnt/again/note", env=env)).stdout == "persisted\n"
    ok(run_inproc("machines", "delete", second, "--force", "--yes", env=env))
