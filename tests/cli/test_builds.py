"""`valyent builds` against the sandbox: Ravel's builds API served with the engine of the podman driver, and a
501 without an engine (process driver). The base image is the offline busybox one (tests/support/engine.py)."""

from __future__ import annotations

import json
import secrets
import subprocess
import time

from support.cli import run_cli


def write_context(tmp_path, base: str, extra: str = "") -> str:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {base}\n"
        "ARG GREETING=default\n"
        "COPY . /ctx\n"
        'RUN echo "$GREETING from the build" > /built.txt\n'
        'CMD ["sh", "-c", "cat /built.txt; ls /ctx; exec sleep 600"]\n' + extra)
    (ctx / "app.txt").write_text("the app\n")
    (ctx / "secret.env").write_text("TOKEN=do-not-send\n")
    (ctx / ".dockerignore").write_text("# not in the image\n*.env\n")
    return str(ctx)


def test_build_then_run_the_image(podman_env, engine_images, tmp_path):
    name = f"valyent-test-app-{secrets.token_hex(3)}"
    ctx = write_context(tmp_path, engine_images["base"])
    r = run_cli("builds", "create", ctx, "--image", name, "--tag", "v1", "--build-arg", "GREETING=hello", "--json",
                env=podman_env, timeout=180)
    try:
        assert r.returncode == 0, r.stderr
        build = json.loads(r.stdout)
        assert build["status"] == "completed" and build["full_image"] == f"{name}:v1"
        assert build["digest"].startswith("sha256:")
        assert "STEP" in r.stderr  # the build log, followed live on stderr
        logs = run_cli("builds", "logs", build["id"], env=podman_env)
        assert logs.returncode == 0 and "COPY . /ctx" in logs.stdout
        listed = run_cli("builds", "list", "-q", env=podman_env)
        assert build["id"] in listed.stdout.split()
        mid = run_cli("machines", "create", "-q", "--image", f"{name}:v1", env=podman_env, timeout=120).stdout.strip()
        try:
            deadline = time.monotonic() + 20
            while True:
                out = run_cli("logs", mid, env=podman_env).stdout
                if "app.txt" in out or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert "hello from the build" in out
            assert "app.txt" in out and "secret.env" not in out  # .dockerignore honoured
        finally:
            run_cli("machines", "delete", "--yes", "--force", mid, env=podman_env)
    finally:
        subprocess.run(["podman", "rmi", "--force", f"localhost/{name}:v1"], capture_output=True)


def test_a_failing_build_exits_1_with_its_error(podman_env, engine_images, tmp_path):
    ctx = write_context(tmp_path, engine_images["base"], "RUN echo about to fail; exit 3\n")
    r = run_cli("builds", "create", ctx, "--image", f"valyent-test-bad-{secrets.token_hex(3)}", "-q",
                env=podman_env, timeout=180)
    assert r.returncode == 1
    assert "about to fail" in r.stderr and "failed" in r.stderr
    build_id = r.stdout.strip()
    show = run_cli("builds", "show", "--json", build_id, env=podman_env)
    assert json.loads(show.stdout)["status"] == "failed"


def test_bad_input_is_refused_before_sending(cli_env, tmp_path):
    r = run_cli("builds", "create", str(tmp_path), "--image", "x", env=cli_env)
    assert r.returncode == 2 and "Dockerfile" in r.stderr
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    r = run_cli("builds", "create", str(tmp_path), "--image", "x", "--build-arg", "NOEQUALS", env=cli_env)
    assert r.returncode == 2 and "KEY=VALUE" in r.stderr


def test_without_an_engine_create_says_why_and_list_shows_none(cli_env, sandbox, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    r = run_cli("builds", "create", str(tmp_path), "--image", "x", env=cli_env)
    assert r.returncode == 1
    assert "builds need a container engine" in r.stderr and "--driver podman" in r.stderr
    # listing is not building: what there is (none), exit 0, no "safe to retry" 501
    listed = run_cli("builds", "list", env=cli_env)
    assert listed.returncode == 0, listed.stderr
    assert "No builds" in listed.stderr + listed.stdout and "501" not in listed.stderr
    assert run_cli("builds", "list", "--json", env=cli_env).stdout.strip() == "[]"
    missing = run_cli("builds", "show", "build_01nosuchbuild", env=cli_env)
    assert missing.returncode == 4, missing.stderr


def test_cancel_a_running_build(podman_env, engine_images, tmp_path):
    ctx = write_context(tmp_path, engine_images["base"], "RUN sleep 60\n")
    r = run_cli("builds", "create", ctx, "--image", f"valyent-test-slow-{secrets.token_hex(3)}", "--detach", "-q",
                env=podman_env, timeout=60)
    assert r.returncode == 0, r.stderr
    build_id = r.stdout.strip()
    deadline = time.monotonic() + 30
    while "sleep 60" not in run_cli("builds", "logs", build_id, env=podman_env).stdout:
        assert time.monotonic() < deadline, "the build never reached its slow step"
        time.sleep(0.2)
    cancel = run_cli("builds", "cancel", build_id, env=podman_env)
    assert cancel.returncode == 0, cancel.stderr
    follow = run_cli("builds", "logs", "-f", build_id, env=podman_env, timeout=30)  # ends with the build
    assert follow.returncode == 0
    build = json.loads(run_cli("builds", "show", "--json", build_id, env=podman_env).stdout)
    assert build["status"] == "failed" and build["error"] == "build canceled"
    shown = run_cli("builds", "show", build_id, env=podman_env).stdout  # the API says failed; in words: cancelled
    assert "cancelled" in shown and "failed" not in shown.split("Status:")[1].splitlines()[0]
    assert build_id in run_cli("builds", "list", env=podman_env).stdout
    again = run_cli("builds", "cancel", build_id, env=podman_env)  # already in that state: a note, exit 0
    assert again.returncode == 0 and "has already ended (cancelled): nothing to cancel" in again.stderr
