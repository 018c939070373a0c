"""Issue 17, items 13, 14 and 18: the CLI against answers of the wrong shape, from a real loopback server that
answers them on purpose (tests/support/faultserver.py), and a few small wrong messages.

Every unexpected shape ends as "unexpected answer from the server", saying what was expected, with exit 1: never
a KeyError, an AttributeError or a RecursionError, never a create that "succeeds" without an id.
"""

from __future__ import annotations

import json

import pytest
from support.faultserver import FaultServer, Reply, cli_env_for
from support.cli import run_cli
from support.cli import run_main

MACHINE = {"id": "m1", "fleet": "web", "state": "running", "config": {"image": "nginx"}}


def serve(server: FaultServer, routes: dict[tuple[str, str], Reply]) -> None:
    """Answer each (method, path) from ``routes``; anything else is a 404."""

    def handler(request):
        return routes.get((request.method, request.path), Reply(404, json={"detail": "not found"}))

    server.handler = handler


def unexpected(result, expected: str) -> None:
    assert result.code == 1, (result.code, result.out, result.err)
    assert "unexpected answer from the server" in result.err, result.err
    assert expected in result.err, result.err
    for word in ("internal error", "KeyError", "AttributeError", "RecursionError", "TypeError", "Traceback"):
        assert word not in result.err, result.err


# -- 13: a machine that is `{}` -----------------------------------------------------------------------------------
COMMANDS = [
    ["machines", "start", "m1"], ["machines", "stop", "m1"], ["machines", "delete", "m1", "--yes"],
    ["machines", "wait", "m1"], ["machines", "events", "m1"], ["machines", "exec", "m1", "--", "true"],
    ["machines", "enable-gateway", "m1"], ["machines", "show", "m1"], ["fs", "ls", "m1"], ["logs", "m1"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_an_empty_machine_is_an_unexpected_answer(fault_server, tmp_path, argv):
    serve(fault_server, {
        ("GET", "/v1/fleets/web/machines/m1"): Reply(200, json={}),
        ("GET", "/v1/fleets/web/machines"): Reply(200, json=[{}]),
    })
    result = run_main(argv, cli_env_for(fault_server, tmp_path))
    if argv[1] == "exec":  # exec's own failures are 255, after the same message
        assert result.code == 255 and "unexpected answer from the server" in result.err, result
        return
    unexpected(result, 'a machine object with an "id"')


@pytest.mark.parametrize("machine, expected", [
    ({**MACHINE, "events": "x"}, '"events" as a list (got a string)'),
    ({**MACHINE, "config": "x"}, '"config" as an object'),
    ({**MACHINE, "config": {"image": "nginx", "workload": {"init": []}}}, '"config.workload.init" as an object'),
    ({**MACHINE, "id": 7}, '"id" as a string (got an integer)'),
    ({**MACHINE, "id": ""}, 'a non-empty "id"'),
])
def test_a_machine_with_a_field_of_the_wrong_type(fault_server, tmp_path, machine, expected):
    serve(fault_server, {("GET", "/v1/fleets/web/machines/m1"): Reply(200, json=machine)})
    unexpected(run_main(["machines", "show", "m1"], cli_env_for(fault_server, tmp_path)), expected)


def test_events_that_are_not_a_list(fault_server, tmp_path):
    serve(fault_server, {
        ("GET", "/v1/fleets/web/machines/m1"): Reply(200, json=MACHINE),
        ("GET", "/v1/fleets/web/machines/m1/events"): Reply(200, json={"events": "x"}),
    })
    unexpected(run_main(["machines", "events", "m1"], cli_env_for(fault_server, tmp_path)),
               "expected a JSON array of events, got an object")


def test_deeply_nested_json_from_the_server(fault_server, tmp_path):
    serve(fault_server, {("GET", "/v1/fleets/web/machines"): Reply(200, body="[" * 200_000,
                                                                     headers={"Content-Type": "application/json"})})
    unexpected(run_main(["machines", "list"], cli_env_for(fault_server, tmp_path)), "nested too deeply")


def test_deeply_nested_error_answer(fault_server, tmp_path):
    serve(fault_server, {("GET", "/v1/fleets/web/machines"): Reply(400, body="[" * 200_000,
                                                                     headers={"Content-Type": "application/json"})})
    result = run_main(["machines", "list"], cli_env_for(fault_server, tmp_path))
    assert result.code == 1 and "nested too deeply" in result.err and "Recursion" not in result.err, result


@pytest.mark.parametrize("suffix, body", [(".json", '{"a":' * 5000 + "1" + "}" * 5000),
                                          (".json", "[" * 200_000),
                                          (".toml", "a = " + "[" * 5000 + "]" * 5000),
                                          (".json", '{"region": "gra-1", "config": ' + '{"x":' * 100 + "1" + "}" * 101)])
def test_a_deeply_nested_config_file_is_bad_input(tmp_path, suffix, body):
    path = tmp_path / f"payload{suffix}"
    path.write_text(body)
    result = run_main(["machines", "create", "--config", str(path), "--dry-run"], {"VALYENT_CONFIG_DIR": str(tmp_path)})
    assert result.code == 2, result
    assert str(path) in result.err and "nested too deeply" in result.err and "Recursion" not in result.err


@pytest.mark.parametrize("which", ["config.toml", "valyent.toml"])
def test_a_deeply_nested_configuration_file_exits_2_naming_it(tmp_path, which):
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    path = (config_dir if which == "config.toml" else project) / which
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    result = run_cli("fleets", "list", env={"VALYENT_CONFIG_DIR": str(config_dir), "VALYENT_API_TOKEN": "t" * 12,
                                            "VALYENT_API_URL": "http://127.0.0.1:9/v1", "PATH": "/usr/bin:/bin"},
                     cwd=project)
    assert result.returncode == 2, result
    assert str(path) in result.stderr and "nested too deeply" in result.stderr
    assert "Traceback" not in result.stderr


# -- 14: creates answered without an id, exec without an exit code ------------------------------------------------
def test_a_machine_create_answered_without_an_id_exits_1(fault_server, tmp_path):
    serve(fault_server, {("POST", "/v1/fleets/web/machines"): Reply(201, json={"state": "created"})})
    result = run_main(["machines", "create", "-q", "--image", "nginx", "--detach"], cli_env_for(fault_server, tmp_path))
    unexpected(result, 'a machine object with an "id"')
    assert result.out == ""


def test_a_fleet_create_answered_without_an_id_exits_1(fault_server, tmp_path):
    serve(fault_server, {("POST", "/v1/fleets"): Reply(201, json={"name": "web"})})
    result = run_main(["fleets", "create", "web"], cli_env_for(fault_server, tmp_path))
    unexpected(result, 'a fleet object with an "id"')
    assert "None" not in result.err + result.out


def test_a_gateway_create_answered_without_an_id_exits_1(fault_server, tmp_path):
    serve(fault_server, {("POST", "/v1/fleets/web/gateways"): Reply(201, json={"name": "web", "target_port": 80})})
    result = run_main(["gateways", "create", "--name", "web", "--port", "80"], cli_env_for(fault_server, tmp_path))
    unexpected(result, 'a gateway object with an "id"')


@pytest.mark.parametrize("answer", [{"stdout": "hi\n", "stderr": ""}, {"stdout": "hi", "exit_code": "0"},
                                    {"stdout": 5, "exit_code": 0}, {"stdout": "hi", "exit_code": True},
                                    {"stdout": "hi", "exit_code": 1.5}])
def test_an_exec_answer_without_an_exit_code_is_255_with_a_message(fault_server, tmp_path, answer):
    serve(fault_server, {
        ("GET", "/v1/fleets/web/machines/m1"): Reply(200, json=MACHINE),
        ("POST", "/v1/fleets/web/machines/m1/exec"): Reply(200, json=answer),
    })
    result = run_main(["machines", "exec", "m1", "--", "true"], cli_env_for(fault_server, tmp_path))
    assert result.code == 255, result
    assert "unexpected answer from the server" in result.err and "exit_code" in result.err, result.err


# -- 18: small wrong messages -------------------------------------------------------------------------------------
def test_mkdir_failing_after_its_retries_is_not_said_to_maybe_have_taken_effect(fault_server, tmp_path):
    serve(fault_server, {
        ("GET", "/v1/fleets/web/machines/m1"): Reply(200, json=MACHINE),
        ("POST", "/initd/m1/fs/mkdir"): Reply(500, json={"detail": "boom"}),
    })
    result = run_main(["fs", "mkdir", "m1", "/a"], cli_env_for(fault_server, tmp_path))
    assert result.code == 1, result
    assert fault_server.count("POST", "/initd/m1/fs/mkdir") == 3  # retried: it is safe to
    assert "may still have taken effect" not in result.err and "safe to retry" in result.err, result.err


def test_a_list_of_non_objects_says_what_the_item_is(fault_server, tmp_path):
    serve(fault_server, {("GET", "/v1/fleets/web/machines"): Reply(200, json=[1, 2])})
    result = run_main(["machines", "list"], cli_env_for(fault_server, tmp_path))
    unexpected(result, "item 0 is an integer")
    assert "got list" not in result.err


def test_fs_stat_of_an_empty_object_is_not_a_file(fault_server, tmp_path):
    serve(fault_server, {
        ("GET", "/v1/fleets/web/machines/m1"): Reply(200, json=MACHINE),
        ("GET", "/initd/m1/fs/stat"): Reply(200, json={}),
    })
    result = run_main(["fs", "stat", "m1", "/x"], cli_env_for(fault_server, tmp_path))
    unexpected(result, 'an entry object with a "name"')
    assert "Type" not in result.out


def test_exec_output_that_is_not_utf8_is_written_as_its_bytes(fault_server, tmp_path):
    # The sandbox sends such bytes as lone surrogates (JSON "\udcff"); the CLI writes the bytes back.
    serve(fault_server, {
        ("GET", "/v1/fleets/web/machines/m1"): Reply(200, json=MACHINE),
        ("POST", "/v1/fleets/web/machines/m1/exec"): Reply(200, body=json.dumps(
            {"stdout": "\udcff\udcfe\x00ok", "stderr": "", "exit_code": 0}), headers={"Content-Type": "application/json"}),
    })
    result = run_cli("machines", "exec", "m1", "--", "cat", "/bin", env=cli_env_for(fault_server, tmp_path), text=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"\xff\xfe\x00ok"


def test_binary_exec_output_from_the_sandbox_comes_through_intact(cli_env, sandbox):
    from valyent_cli.api import Client

    client = Client(sandbox.token, endpoint=sandbox.url, initd_endpoint=sandbox.initd)
    fleet = client.fleets.create("bin-exec")
    env = {**cli_env, "VALYENT_FLEET": fleet["id"]}
    try:
        made = run_cli("machines", "create", "-q", "--image", "nginx", env=env)
        assert made.returncode == 0, made.stderr
        mid = made.stdout.strip()
        result = run_cli("machines", "exec", mid, "--", "printf", "\\377\\376\\000\\303\\251", env=env, text=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"\xff\xfe\x00\xc3\xa9"
        as_json = run_cli("machines", "exec", mid, "--json", "--", "printf", "\\377", env=env)
        assert json.loads(as_json.stdout)["stdout"] == "\udcff"
    finally:
        for m in client.machines.list(fleet["id"]):
            client.machines.delete(fleet["id"], m["id"], force=True)
        client.fleets.delete(fleet["id"])
        client.close()
