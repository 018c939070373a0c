"""Issue 7, input: a property over `machines create`'s flags, and the huge and non-UTF-8 arguments that
test_bad_input.py does not already try.

The property runs the payload builder in this process, `payload.build(CreateFlags(...))`, over generated flag
values (plausible ones and junk): whatever it accepts is a payload the contract allows; whatever it refuses is a
UsageError (exit 2) naming a flag. The contract is written out again here, independently of payload.check.
"""

from __future__ import annotations

import json
import re

import pytest
from support.env import cli_environ
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.cli import run_main

from valyent_cli.cli.errors import UsageError
from valyent_cli.cli.payload import CreateFlags, build

FLAGS = ("--image", "--region", "--cpus", "--memory", "--cpu-kind", "--env", "--cmd", "--entrypoint", "--user",
         "--restart", "--max-retries", "--stop-signal", "--stop-timeout")
SIGNALS = {"SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV",
           "SIGPIPE", "SIGALRM", "SIGTERM"}  # a Ravel node's (internal/signals/signals.go)
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Junk a user (or a script gone wrong) can type: empty, blank, NUL, non-UTF-8 argv (surrogate escapes), lone
# surrogates (from a JSON \ud800 escape), control characters, very long, shell-ish.
JUNK = st.sampled_from(["", " ", "\t", "\x00", "a\x00b", "\udcff", "ngi\udcffnx", "\ud800", "x" * 70_000, "\n",
                        "-", "--", "nginx latest", "$(rm -rf /)", "é", "🙂", "None", "null", "0", "-1", "1e9"])


def text(max_size=20):
    return st.text(max_size=max_size) | JUNK


def ints(lo=-5, hi=100):
    return st.integers(min_value=lo, max_value=hi) | st.sampled_from([0, -1, 2**31, 2**63, True, False])


plausible_memory = st.sampled_from(["512", "256mb", "1gb", "1.5g", "2GiB", "0", "0.5", "12xb", "lots", "-512", "1e3",
                                    " 64 mb ", "16777216", "16777217", "0mb"])
argv = st.none() | st.lists(text(max_size=10), max_size=4)

flags = st.builds(
    CreateFlags,
    image=st.none() | st.sampled_from(["nginx", "nginx:1.27", "ghcr.io/acme/app@sha256:abc", "alpine:3"]) | text(),
    region=st.none() | st.sampled_from(["gra-1", "fra"]) | text(),
    cpus=st.none() | ints(),
    memory=st.none() | plausible_memory | text(),
    cpu_kind=st.none() | st.sampled_from(["shared", "eco", "performance", "std_1"]) | text(),
    env=st.lists(st.sampled_from(["A=1", "PORT=8080", "_X=", "EMPTY=", "1BAD=x", "NOEQ", "A B=c", "K=v=w"]) | text(),
                 max_size=4),
    env_file=st.none(),
    cmd=argv,
    entrypoint=argv,
    user=st.none() | st.sampled_from(["root", "1000"]) | text(),
    restart=st.none() | st.sampled_from(["always", "on-failure", "never", "sometimes", "ALWAYS"]) | text(),
    max_retries=st.none() | ints(-3, 2000),
    auto_destroy=st.none() | st.booleans(),
    skip_start=st.none() | st.booleans(),
    stop_signal=st.none() | st.sampled_from(["SIGTERM", "TERM", "sigint", "9", "SIGFOO", "KILL"]) | text(),
    stop_timeout=st.none() | ints(-3, 60),
    enable_gateway=st.none() | st.booleans(),
)


def is_text(value) -> bool:
    """A string that can go on the wire: valid UTF-8, no NUL."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_count(value, lo, hi=None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= lo and (hi is None or value <= hi)


def assert_contract(payload: dict) -> None:
    """CreateMachinePayload as api-contract.md has it: required fields, types, ranges, no nulls, no unknown keys."""
    assert set(payload) <= {"region", "config", "skip_start", "enable_machine_gateway"}, payload
    assert is_text(payload["region"]) and payload["region"].strip() == payload["region"] != ""
    for key in ("skip_start", "enable_machine_gateway"):
        assert key not in payload or isinstance(payload[key], bool)
    config = payload["config"]
    assert set(config) <= {"image", "guest", "workload", "stop_config"}, config
    image = config["image"]
    assert is_text(image) and image and not any(ch.isspace() for ch in image)
    guest = config["guest"]
    assert set(guest) == {"cpu_kind", "memory_mb", "cpus"}
    assert is_text(guest["cpu_kind"]) and guest["cpu_kind"] != ""
    assert is_count(guest["memory_mb"], 1) and is_count(guest["cpus"], 1)
    workload = config.get("workload", {})
    assert isinstance(workload, dict) and set(workload) <= {"env", "restart", "init", "auto_destroy"}
    if "env" in workload:
        assert isinstance(workload["env"], list) and workload["env"]
        for item in workload["env"]:
            assert is_text(item) and ENV_KEY.match(item.partition("=")[0]) and "=" in item
    if "restart" in workload:
        restart = workload["restart"]
        assert restart and set(restart) <= {"policy", "max_retries"}
        assert restart.get("policy", "never") in ("always", "on-failure", "never")
        assert "max_retries" not in restart or is_count(restart["max_retries"], 0)
    if "init" in workload:
        init = workload["init"]
        assert init and set(init) <= {"cmd", "entrypoint", "user"}
        for key in ("cmd", "entrypoint"):
            if key in init:
                assert isinstance(init[key], list) and init[key] and all(is_text(x) for x in init[key])
        assert "user" not in init or (is_text(init["user"]) and init["user"].strip() != "")
    if "auto_destroy" in workload:
        assert isinstance(workload["auto_destroy"], bool)
    if "stop_config" in config:
        stop = config["stop_config"]
        assert stop and set(stop) <= {"timeout", "signal"}
        assert "timeout" not in stop or is_count(stop["timeout"], 0, 30)
        assert "signal" not in stop or stop["signal"] in SIGNALS

    def no_nulls(value):
        assert value is not None
        if isinstance(value, dict):
            for v in value.values():
                no_nulls(v)
        elif isinstance(value, list):
            for v in value:
                no_nulls(v)

    no_nulls(payload)
    json.dumps(payload, ensure_ascii=False).encode("utf-8")  # what goes on the wire


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flags=flags)
def test_accepted_create_flags_make_a_contract_payload_and_refused_ones_name_a_flag(flags):
    try:
        payload = build(flags)
    except UsageError as exc:
        message = str(exc)
        assert any(flag in message for flag in FLAGS), message[:300]
        return
    assert_contract(payload)
    # what was asked is what is sent
    if flags.image is not None:
        assert payload["config"]["image"] == flags.image.strip()
    if flags.cpus is not None:
        assert payload["config"]["guest"]["cpus"] == flags.cpus
    if flags.stop_timeout is not None:
        assert payload["config"]["stop_config"]["timeout"] == flags.stop_timeout


def test_a_lone_surrogate_in_a_config_file_is_refused_naming_the_file(tmp_path):
    """JSON can spell text that is not Unicode (`\\ud800`): refused before any request, not an internal error."""
    config = tmp_path / "machine.json"
    config.write_text('{"config": {"image": "ngi\\ud800nx"}}')
    env = cli_environ(tmp_path / "cfg", url="http://127.0.0.1:9/v1", token="tok-input-0123456789", fleet="web")
    result = run_main(["machines", "create", "--config", str(config)], env)
    assert result.code == 2, result.err
    assert str(config) in result.err and "Traceback" not in result.err


# -- huge and non-UTF-8 arguments, in places test_bad_input.py does not try -------------------------------------
HUGE = "x" * 100_000
BAD = "ab\udcffcd"  # what Python makes of the argv bytes b"ab\xffcd"
CASES = [
    (["machines", "create", "--image", HUGE], "--image"),
    (["machines", "create", "--image", "nginx", "--cmd", HUGE], "--cmd"),
    (["machines", "create", "--image", "nginx", "--", "echo", HUGE], None),
    (["machines", "create", "--image", "nginx", "--region", BAD], "--region"),
    (["machines", "create", "--image", "nginx", "--env", f"A={BAD}"], "--env"),
    (["machines", "create", "--image", "nginx", "--user", BAD], "--user"),
    (["machines", "create", "--image", "nginx", "--", "echo", BAD], None),
    (["fleets", "create", HUGE], "NAME"),
    (["fleets", "create", BAD], "NAME"),
    (["gateways", "create", "--name", BAD, "--port", "80"], "--name"),
    (["machines", "show", BAD], None),
    (["machines", "show", HUGE], None),
    (["machines", "exec", "m1", "--", "echo", BAD], None),
    (["fs", "cat", "m1", "/etc/" + BAD], None),
    (["fs", "ls", "m1", "/" + HUGE], None),
    (["logs", BAD], None),
    (["machines", "list", "--fleet", BAD], "--fleet"),
    (["--namespace", BAD, "fleets", "list"], "namespace"),
    (["--profile", BAD, "fleets", "list"], "profile"),
    (["profiles", "create", BAD], None),
]


@pytest.mark.parametrize(("args", "flag"), CASES, ids=[" ".join(a)[:50].encode("ascii", "replace").decode()
                                                       for a, _ in CASES])
def test_huge_and_non_utf8_arguments_exit_2_before_any_request(tmp_path, args, flag):
    """In-process, with argv as Python decodes it; the endpoint refuses connections, so a request sent would be
    exit 1, not 2."""
    env = cli_environ(tmp_path / "cfg", url="http://127.0.0.1:9/v1", token="tok-input-0123456789", fleet="web")
    result = run_main(args, env)
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err[:500]
    assert result.code == 2, result.err[:500]
    if flag:
        assert flag in result.err
    assert len(result.err) < 5000  # a huge value is not echoed back whole
    assert result.out == ""
