"""`valyent deploy` against a stock Ravel (tests/support/ravelstub.py, written from Ravel's Go source): only the
public API, labels on machines (api/metadata.go), release records in the fleet's annotations (PATCH
/fleets/{fleet}/metadata, ravel/server/endpoints/fleets.go), and the order of the calls of a rolling release."""

from __future__ import annotations

import json
import re

import pytest
import tomli_w
from support.cli import ok, run_cli, run_inproc
from support.env import cli_environ
from support.ravelstub import RavelStub

from valyent_cli.api import Client
from valyent_cli.apps import releases as rel

TOKEN = "ravel-token-0123456789"


@pytest.fixture
def ravel():
    stub = RavelStub(bearer=f"Bearer {TOKEN}", healthy_after=0.2)
    yield stub
    stub.close()


@pytest.fixture
def env(tmp_path, ravel) -> dict:
    env = cli_environ(tmp_path / "config", url=ravel.url, token=TOKEN)
    ok(run_inproc("namespaces", "create", "demo", env=env))
    env["VALYENT_NAMESPACE"] = "demo"
    ok(run_inproc("fleets", "create", "web", env=env))
    env.update(VALYENT_FLEET="web", VALYENT_REGION="fr", VALYENT_CPU_KIND="eco")
    return env


def project(path, image: str, count: int = 2) -> None:
    doc = {"machine": {"image": image, "enable_gateway": True, "health_cmd": "true", "stop_timeout": 3},
           "deploy": {"count": count, "strategy": "rolling", "wait_timeout": "10s"}}
    (path / "valyent.toml").write_text(tomli_w.dumps(doc))


def calls(stub: RavelStub, since: int) -> list[tuple[str, str]]:
    """The writes after ``since`` as (what, machine id or ""), reads of machines left out."""
    out = []
    for method, path, _query, _headers, _body in stub.requests[since:]:
        m = re.fullmatch(r"/fleets/web/machines/([^/]+)(?:/(.*))?", path)
        if method == "POST" and path == "/fleets/web/machines":
            out.append(("create", ""))
        elif method == "PATCH" and path == "/fleets/web/metadata":
            out.append(("record", ""))
        elif m and method == "POST":
            out.append((m.group(2), m.group(1)))
        elif m and method == "DELETE":
            out.append(("delete", m.group(1)))
        elif m and m.group(2) == "wait":
            out.append(("wait-stopped", m.group(1)))
    return out


def test_a_rolling_release_on_ravel_labels_records_and_orders_its_calls(env, ravel, tmp_path):
    client = Client(TOKEN, endpoint=ravel.url, namespace="demo")
    client.fleets.update_metadata("web", {"labels": {"team": "a"}, "annotations": {"owner": "ops"}})
    project(tmp_path, "registry.example.com/web:1")
    ci = {"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "alice", "GITHUB_REPOSITORY": "acme/web",
          "GITHUB_SHA": "0123456789abcdef", "GITHUB_RUN_ID": "42"}
    first = run_cli("deploy", "--json", env={**env, **ci}, cwd=str(tmp_path), timeout=60)
    assert first.returncode == 0, first.stderr
    old = sorted(json.loads(first.stdout)["machines"])
    # who and from where: the CI's variables
    assert json.loads(first.stdout)["by"] == {"ci": "github-actions", "actor": "alice", "repository": "acme/web",
                                              "commit": "0123456789abcdef", "run": "42"}
    assert "alice (github-actions 0123456789ab)" in ok(run_cli("releases", env=env, cwd=str(tmp_path))).stdout
    assert len(old) == 2

    project(tmp_path, "registry.example.com/web:2")
    since = len(ravel.requests)
    second = run_cli("deploy", "--json", env=env, cwd=str(tmp_path), timeout=60)
    assert second.returncode == 0, second.stderr
    record = json.loads(second.stdout)
    new = record["machines"]
    seq = calls(ravel, since)
    # the new machines: created without the gateway, labelled with the app and the release
    created = [b for b in ravel.bodies("POST", "/fleets/web/machines")][-2:]
    for body in created:
        assert body["metadata"]["labels"] == {"valyent.app": "web", "valyent.release": "2"}
        assert body["enable_machine_gateway"] is False
        assert body["config"]["image"] == "registry.example.com/web:2"
    old_order = [mid for what, mid in seq if what == "delete"]
    assert sorted(old_order) == old
    expected = [("record", "")]
    for new_id, old_id in zip(new, old_order):
        expected += [("create", ""), ("gateway/enable", new_id), ("gateway/disable", old_id), ("stop", old_id),
                     ("wait-stopped", old_id), ("delete", old_id)]
    expected += [("record", "")]
    assert seq == expected
    # records in the fleet's annotations; its own labels and annotations kept
    metadata = client.fleets.get("web")["metadata"]
    assert metadata["labels"] == {"team": "a"} and metadata["annotations"]["owner"] == "ops"
    stored = json.loads(metadata["annotations"]["valyent.releases/web/2"])
    assert stored["status"] == "succeeded" and stored["payload"]["config"]["image"] == "registry.example.com/web:2"
    assert stored["machines"] == new
    machines = [m for m in client.machines.list("web") if m["state"] != "destroyed"]
    assert sorted(m["id"] for m in machines) == sorted(new)
    assert all(m["gateway_enabled"] for m in machines)
    status = json.loads(ok(run_cli("status", "--json", env=env, cwd=str(tmp_path))).stdout)
    assert status["release"]["release"] == 2 and len(status["machines"]) == 2


def test_the_records_keep_within_ravels_annotation_limits(env, ravel):
    client = Client(TOKEN, endpoint=ravel.url, namespace="demo")
    others = {f"other.{i}": "x" for i in range(25)}
    client.fleets.update_metadata("web", {"annotations": others})
    store = rel.Releases(client, "web", "web")
    for n in range(1, 13):
        store.save(rel.new_record("web", n, {"config": {"image": f"img:{n}"}}, "rolling"))
    annotations = client.fleets.get("web")["metadata"]["annotations"]
    assert len(annotations) == 32  # Ravel's maximum, never more
    assert [r["release"] for r in store.list()] == [12, 11, 10, 9, 8, 7, 6]
    assert all(k in annotations for k in others)
    # alone in its fleet, an app keeps its last KEEP releases
    client.fleets.update_metadata("web", {})
    for n in range(1, 13):
        store.save(rel.new_record("web", n, {"config": {"image": f"img:{n}"}}, "rolling"))
    assert [r["release"] for r in store.list()] == list(range(12, 12 - rel.KEEP, -1))
    # a record over Ravel's 64 KiB value limit is kept without its payload
    big = {"config": {"image": "img", "workload": {"env": [f"K{i}=" + "v" * 1000 for i in range(80)]}}}
    store.save(rel.new_record("web", 13, big, "rolling"))
    assert store.get(13)["payload"] is None


def test_rollback_goes_to_the_previous_release_that_runs_something_else(env, ravel, tmp_path):
    for image in ("web:1", "web:2"):
        project(tmp_path, f"registry.example.com/{image}", count=1)
        ok(run_cli("deploy", env=env, cwd=str(tmp_path), timeout=60))
    back = json.loads(ok(run_cli("rollback", "--json", env=env, cwd=str(tmp_path), timeout=60)).stdout)
    assert back["release"] == 3 and back["rollback_of"] == 1 and back["image"] == "registry.example.com/web:1"
    # again: release 2's payload (release 1's is what runs now), not release 1 once more
    again = json.loads(ok(run_cli("rollback", "--json", env=env, cwd=str(tmp_path), timeout=60)).stdout)
    assert again["rollback_of"] == 2 and again["image"] == "registry.example.com/web:2"
    missing = run_cli("rollback", "9", env=env, cwd=str(tmp_path))
    assert missing.returncode == 4 and "no release 9" in missing.stderr


def test_a_release_recorded_as_still_running_is_warned_about(env, ravel, tmp_path):
    client = Client(TOKEN, endpoint=ravel.url, namespace="demo")
    rel.Releases(client, "web", "web").save(rel.new_record("web", 1, {"config": {"image": "x"}}, "rolling"))
    project(tmp_path, "registry.example.com/web:1", count=1)
    result = ok(run_cli("deploy", "--json", env=env, cwd=str(tmp_path), timeout=60))
    assert "release 1 of web is recorded as still running" in result.stderr
    assert json.loads(result.stdout)["release"] == 2
