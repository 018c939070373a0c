"""`valyent builds` against the sandbox: Ravel's builds API served with the engine of a container driver
(podman and docker: each test runs on both, support/engine.py), and a 501 without an engine (process driver). The
base image is the offline busybox one (tests/support/engine.py)."""

from __future__ import annotations

import io
import json
import secrets
import tarfile
import time

from support.cli import ANSI, on_terminal, run_cli


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


def test_build_then_run_the_image(engine, engine_env, engine_images, tmp_path):
    name = f"valyent-test-app-{secrets.token_hex(3)}"
    ctx = write_context(tmp_path, engine_images["base"])
    r = run_cli("builds", "create", ctx, "--image", name, "--tag", "v1", "--build-arg", "GREETING=hello", "--json",
                env=engine_env, timeout=180)
    try:
        assert r.returncode == 0, r.stderr
        build = json.loads(r.stdout)
        assert build["status"] == "completed" and build["full_image"] == f"localhost/default/{name}:v1"
        assert build["digest"].startswith("sha256:")
        assert "step" in r.stderr.lower()  # the build log (podman: STEP 1/5, docker: Step 1/5), followed live on stderr
        logs = run_cli("builds", "logs", build["id"], env=engine_env)
        assert logs.returncode == 0 and "COPY . /ctx" in logs.stdout
        listed = run_cli("builds", "list", "-q", env=engine_env)
        assert build["id"] in listed.stdout.split()
        code, screen = on_terminal(["builds", "list"], engine_env, columns=120)  # times as `machines list` shows them
        row = next(line for line in ANSI.sub("", screen).splitlines() if build["id"] in line)
        assert code == 0 and ("ago" in row or "just now" in row) and "T" not in row.split(build["id"])[1], row
        mid = run_cli("machines", "create", "-q", "--image", f"{name}:v1", env=engine_env, timeout=120).stdout.strip()
        try:
            deadline = time.monotonic() + 20
            while True:
                out = run_cli("logs", mid, env=engine_env).stdout
                if "app.txt" in out or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert "hello from the build" in out
            assert "app.txt" in out and "secret.env" not in out  # .dockerignore honoured
        finally:
            run_cli("machines", "delete", "--yes", "--force", mid, env=engine_env)
    finally:
        # its name as the sandbox tags it: localhost/<namespace>/NAME (not another namespace's image)
        engine.run("rmi", "--force", f"localhost/default/{name}:v1")
        assert engine.run("image", "inspect", f"localhost/default/{name}:v1").returncode != 0


def test_a_failing_build_exits_1_with_its_error(engine, engine_env, engine_images, tmp_path):
    ctx = write_context(tmp_path, engine_images["base"], "RUN echo about to fail; exit 3\n")
    r = run_cli("builds", "create", ctx, "--image", f"valyent-test-bad-{secrets.token_hex(3)}", "-q",
                env=engine_env, timeout=180)
    assert r.returncode == 1
    assert "about to fail" in r.stderr and "failed" in r.stderr
    build_id = r.stdout.strip()
    show = run_cli("builds", "show", "--json", build_id, env=engine_env)
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


def test_cancel_a_running_build(engine, engine_env, engine_images, tmp_path):
    ctx = write_context(tmp_path, engine_images["base"], "RUN sleep 60\n")
    r = run_cli("builds", "create", ctx, "--image", f"valyent-test-slow-{secrets.token_hex(3)}", "--detach", "-q",
                env=engine_env, timeout=60)
    assert r.returncode == 0, r.stderr
    build_id = r.stdout.strip()
    deadline = time.monotonic() + 30
    while "sleep 60" not in run_cli("builds", "logs", build_id, env=engine_env).stdout:
        assert time.monotonic() < deadline, "the build never reached its slow step"
        time.sleep(0.2)
    cancel = run_cli("builds", "cancel", build_id, env=engine_env)
    assert cancel.returncode == 0, cancel.stderr
    follow = run_cli("builds", "logs", "-f", build_id, env=engine_env, timeout=30)  # ends with the build
    assert follow.returncode == 0
    build = json.loads(run_cli("builds", "show", "--json", build_id, env=engine_env).stdout)
    assert build["status"] == "failed" and build["error"] == "build canceled"
    shown = run_cli("builds", "show", build_id, env=engine_env).stdout  # the API says failed; in words: cancelled
    assert "cancelled" in shown and "failed" not in shown.split("Status:")[1].splitlines()[0]
    assert build_id in run_cli("builds", "list", env=engine_env).stdout
    again = run_cli("builds", "cancel", build_id, env=engine_env)  # already in that state: a note, exit 0
    assert again.returncode == 0 and "has already ended (cancelled): nothing to cancel" in again.stderr


def _tar_gz(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        dockerfile = b"FROM scratch\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def test_a_context_reaching_outside_itself_is_refused_and_writes_nothing(engine, engine_sandbox, tmp_path):
    """Issue 28 item 1: `..`, an absolute path, a symlink or a hard link out of the context (and a file written
    through such a link): 400 before any build, nothing written outside the build's directory."""
    token = secrets.token_hex(4)
    data = engine_sandbox.data_dir
    # the context is <data>/builds/<id>/context: four `..` reach the sandbox's parent directory
    up = "../../../../"
    outside = data.parent / f"escaped-{token}"
    victim = data.parent / f"victim-{token}"
    victim.write_text("untouched\n")
    absolute = tmp_path / f"absolute-{token}"
    cases = {
        "dot-dot": [(_member(f"{up}escaped-{token}"), b"x\n")],
        "absolute": [(_member(str(absolute)), b"x\n")],
        "symlink": [(_member("out", tarfile.SYMTYPE, up.rstrip("/")), None),
                    (_member(f"out/escaped-{token}"), b"x\n")],
        "absolute symlink": [(_member("abs", tarfile.SYMTYPE, str(data.parent)), None),
                             (_member(f"abs/escaped-{token}"), b"x\n")],
        "hard link": [(_member("hard", tarfile.LNKTYPE, f"{up}victim-{token}"), None),
                      (_member("hard"), b"overwritten\n")],
    }
    with engine_sandbox.client() as api:
        before = api.get("/namespaces/default/builds").json()
        for case, members in cases.items():
            r = api.post("/namespaces/default/builds", params={"image_name": f"valyent-test-evil-{token}"},
                         files={"context": ("context.tar.gz", _tar_gz(*members), "application/gzip")})
            assert r.status_code == 400, (case, r.status_code, r.text)
            assert r.json()["errors"][0]["location"] == "body.context", (case, r.text)
        assert api.get("/namespaces/default/builds").json() == before  # no build was started
    assert not outside.exists() and not absolute.exists()
    assert victim.read_text() == "untouched\n"
    assert not list((data / "builds").glob("*/context"))  # and the refused contexts were removed


def test_bad_image_names_tags_and_registries_are_refused_before_sending(cli_env, tmp_path):
    """Issue 24, item 22: refused as `machines create` refuses a bad image (exit 2), not by the engine (125)."""
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    for flags, named in ((["--image", "Bad Name"], "--image"), (["--image", "MyApp"], "--image"),
                         (["--image", "app:v1"], "--tag"), (["--image", "app", "--tag", "-v1"], "--tag"),
                         (["--image", "app", "--tag", "v 1"], "--tag"),
                         (["--image", "app", "--registry", "http://ghcr.io"], "--registry")):
        r = run_cli("builds", "create", str(tmp_path), *flags, env=cli_env)
        assert r.returncode == 2 and named in r.stderr, (flags, r.stderr)
        assert "Sending" not in r.stderr
    # good ones reach the server (the process driver has no engine: 501)
    r = run_cli("builds", "create", str(tmp_path), "--image", "team/my_app-2", "--tag", "v1.2_rc-1",
                "--registry", "localhost:5000/team", env=cli_env)
    assert r.returncode == 1 and "Sending" in r.stderr, r.stderr


# -- issue 27, items 13 and 14: contexts that cost the server, and no host path in build answers ------------------
def _tar_gz_of(entries: dict[str, bytes], empty_files: int = 0) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for i in range(empty_files):
            tar.addfile(tarfile.TarInfo(f"f{i}"))
    return buf.getvalue()


def _post_build(sandbox, context: bytes, image: str):
    with sandbox.client(timeout=120) as api:
        return api.post("/namespaces/default/builds", params={"image_name": image},
                        files={"context": ("context.tar.gz", context, "application/gzip")})


def _no_host_path(text: str, sandbox) -> None:
    import os

    for path in {str(sandbox.data_dir), os.path.realpath(sandbox.data_dir)}:
        assert path not in text, text


MAX_ENTRIES = 100_000  # docs/reliability.md


def test_a_context_of_too_many_entries_is_refused_before_it_is_extracted(engine, engine_sandbox, engine_images):
    context = _tar_gz_of({"Dockerfile": f"FROM {engine_images['base']}\n".encode()}, empty_files=MAX_ENTRIES)
    r = _post_build(engine_sandbox, context, f"valyent-test-many-{secrets.token_hex(3)}")
    assert r.status_code == 400, r.text
    assert f"more than {MAX_ENTRIES} entries" in r.json()["detail"], r.text
    builds = engine_sandbox.data_dir / "builds"
    assert not any((d / "context" / "f0").exists() for d in builds.iterdir()), "the context was extracted"


def test_build_answers_name_no_host_path(engine, engine_sandbox, engine_images):
    escaping = _tar_gz_of({"Dockerfile": b"FROM scratch\n", "../outside.txt": b"x"})
    r = _post_build(engine_sandbox, escaping, f"valyent-test-esc-{secrets.token_hex(3)}")
    assert r.status_code == 400, r.text
    assert "outside.txt" in r.text
    _no_host_path(r.text, engine_sandbox)
    missing = _tar_gz_of({"Dockerfile": f"FROM {engine_images['base']}\nCOPY missing.txt /x\n".encode()})
    r = _post_build(engine_sandbox, missing, f"valyent-test-miss-{secrets.token_hex(3)}")
    assert r.status_code == 200, r.text
    build_id = r.json()["id"]
    with engine_sandbox.client() as api:
        def ended():
            build = api.get(f"/namespaces/default/builds/{build_id}").json()
            return build if build["status"] in ("completed", "failed") else None

        from support.util import wait_until

        build = wait_until(ended, timeout=120, message="the build to end")
    assert build["status"] == "failed" and "missing.txt" in build["error"], build
    _no_host_path(json.dumps(build), engine_sandbox)
    with engine_sandbox.client() as api:
        log = api.get(f"/namespaces/default/builds/{build_id}/logs").text
    assert "missing.txt" in log
    _no_host_path(log, engine_sandbox)
