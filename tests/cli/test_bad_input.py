"""Every bad input a user can type gets a message naming the flag or file and exit 2, with no request sent.

The endpoint points at a port nothing listens on: had a request been sent, the exit code would be 1 (connection
refused), not 2.
"""

from __future__ import annotations

import json
import sys

import pytest
from support.cli import run_cli, run_inproc
from support.env import cli_environ

UNREACHABLE = "http://127.0.0.1:9/v1"


@pytest.fixture()
def env(tmp_path):
    return cli_environ(tmp_path / "config", url=UNREACHABLE, token="tok-bad-input-secret", fleet="default")


CREATE = ["machines", "create", "--image", "nginx"]

CASES = [
    (CREATE[:2], "--image"),
    ([*CREATE, "--memory", "12xb"], "--memory"),
    ([*CREATE, "--memory", "0"], "--memory"),
    ([*CREATE, "--memory", "lots"], "--memory"),
    ([*CREATE, "--cpus", "0"], "--cpus"),
    ([*CREATE, "--cpus", "two"], "--cpus"),
    ([*CREATE, "--env", "NOEQUALS"], "--env"),
    ([*CREATE, "--env", "1BAD=x"], "--env"),
    ([*CREATE, "--restart", "sometimes"], "--restart"),
    ([*CREATE, "--max-retries", "-1"], "--max-retries"),
    ([*CREATE, "--stop-signal", "SIGFOO"], "--stop-signal"),
    ([*CREATE, "--stop-timeout", "31"], "--stop-timeout"),
    ([*CREATE, "--cmd", "echo 'unclosed"], "--cmd"),
    ([*CREATE, "--cmd", ""], "--cmd"),
    ([*CREATE, "--cpu-kind", "sh ared"], "--cpu-kind"),
    ([*CREATE, "--region", ""], "--region"),
    ([*CREATE, "--wait-timeout", "soon"], "--wait-timeout"),
    ([*CREATE, "--env-file", "/nonexistent/file.env"], "--env-file"),
    ([*CREATE, "--config", "/nonexistent/payload.json"], "--config"),
    (["machines", "create", "--image", "bad image"], "--image"),
    (["machines", "wait", "m1", "--state", "sleeping"], "--state"),
    (["machines", "wait", "m1", "--timeout", "forever"], "--timeout"),
    (["machines", "wait", "m1", "--timeout", "0"], "--timeout"),
    (["machines", "stop", "m1", "--signal", "NOPE"], "--signal"),
    (["machines", "stop", "m1", "--timeout", "99"], "--timeout"),
    (["machines", "exec", "m1", "--timeout", "x", "--", "true"], "--timeout"),
    (["fleets", "create", "--", "-bad-"], "NAME"),
    (["fleets", "create", "a" * 64], "NAME"),
    (["fleets", "create", "has space"], "NAME"),
    (["gateways", "create", "--name", "web", "--port", "0"], "--port"),
    (["gateways", "create", "--name", "web", "--port", "70000"], "--port"),
    (["gateways", "create", "--name", "we b", "--port", "80"], "--name"),
    (["gateways", "create", "--name", "web"], "--port"),
    (["machines", "list", "--fleet", ""], "--fleet"),
    (["machines", "create", "--image", "nginx", "--bogus"], "--bogus"),
]


@pytest.mark.parametrize(("args", "flag"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_exits_2_naming_the_flag(env, args, flag):
    result = run_inproc(*args, env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert flag in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert "tok-bad-input-secret" not in result.stderr


BAD_FILES = [
    # (the command, the file's name and content, what the message names)
    ([*CREATE, "--config"], "payload.json", '{\n  "region": "gra-1",\n  "config": {"image": "nginx",}\n}\n',
     ["line 3", "column", "{path}"]),
    ([*CREATE, "--config"], "payload.toml", 'region = "gra-1"\n[config\nimage = "nginx"\n', ["line 2", "--config"]),
    ([*CREATE, "--config"], "payload.json",
     json.dumps({"region": "gra-1", "config": {"image": "nginx", "guest": {"cpus": 1, "ram": 5}}}),
     ["config.guest.ram"]),
    (["machines", "create", "--config"], "payload.json",
     json.dumps({"config": {"image": "nginx", "guest": {"cpus": "1", "memory_mb": 256, "cpu_kind": "shared"}}}),
     ["config.guest.cpus"]),
    ([*CREATE, "--env-file"], "app.env", "# comment\nGOOD=1\nthis is not a pair\n", ["line 3", "--env-file"]),
    ([*CREATE, "--env-file"], "app.env", b"A=\xff\xfe\n", ["UTF-8"]),
]


@pytest.mark.parametrize(("args", "filename", "content", "named"), BAD_FILES,
                         ids=["json-syntax", "toml-syntax", "unknown-key", "wrong-type", "env-line", "env-not-utf8"])
def test_a_bad_file_is_refused_naming_where(env, tmp_path, args, filename, content, named):
    """A --config or --env-file that cannot be used: exit 2, the line (and column), the key or the encoding named."""
    bad = tmp_path / filename
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content)
    result = run_inproc(*args, str(bad), env=env)
    assert result.returncode == 2, result.stderr
    for part in named:
        assert part.format(path=bad) in result.stderr, result.stderr


def test_huge_argument_refused(env):
    result = run_inproc(*CREATE, "--env", "A=" + "x" * 70000, env=env)
    assert result.returncode == 2 and "--env" in result.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="surrogate-escaped argv is a POSIX thing")
def test_non_utf8_argument_refused(env):
    result = run_cli("machines", "create", "--image", b"ngi\xffnx", env=env, text=False, timeout=30)
    assert result.returncode == 2, result.stderr
    assert b"--image" in result.stderr and b"Traceback" not in result.stderr


def test_dry_run_sends_nothing_and_prints_the_payload(env):
    result = run_inproc(*CREATE, "--dry-run", "-e", "A=1", "--memory", "1gb", "--restart", "on-failure",
                     "--max-retries", "3", "--", "sh", "-c", "echo hi", env=env)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload == {
        "region": "gra-1",
        "config": {
            "image": "nginx",
            "guest": {"memory_mb": 1024, "cpu_kind": "shared", "cpus": 1},
            "workload": {"env": ["A=1"], "init": {"cmd": ["sh", "-c", "echo hi"]},
                         "restart": {"policy": "on-failure", "max_retries": 3}},
        },
    }


@pytest.mark.parametrize("args", [["fleets", "delete", "x"], ["gateways", "delete", "x"], ["machines", "delete", "x"]])
def test_destructive_commands_need_yes_without_a_terminal(env, args):
    result = run_inproc(*args, env=env, input="")
    assert result.returncode == 2, result.stderr
    assert "--yes" in result.stderr
