"""Issue 17, item 2: text from a server or a machine cannot drive the terminal.

A file name, an image, an error detail or a log line carrying `\\e]0;TITLE\\a` (set the window title), `\\e[2J`
(clear the screen) or a bidi override reaches a terminal with those characters escaped: visible and inert. Log
lines keep their colours (SGR) and nothing else. `--json` is unchanged. Names and images the CLI would send with a
control character in them are refused before any request (exit 2).
"""

from __future__ import annotations

import json

import pytest
from support.faultserver import FaultServer, Reply, cli_env_for, ndjson
from support.cli import run_cli
from support.cli import run_main
from support.cli import on_terminal

TITLE = "\x1b]0;PWNED\x07"
CLEAR = "\x1b[2J"
EVIL = f"nginx{TITLE}{CLEAR}\u202eevil"
MACHINE = {"id": "m1", "fleet": "web", "state": "running", "config": {"image": EVIL}, "region": f"gra{CLEAR}"}


def serve(server: FaultServer) -> None:
    routes = {
        ("GET", "/v1/fleets/web/machines"): Reply(200, json=[MACHINE]),
        ("GET", "/v1/fleets/web/machines/m1"): Reply(200, json=MACHINE),
        ("GET", "/initd/m1/fs/ls"): Reply(200, json=[{"name": f"a{TITLE}{CLEAR}b", "path": "/x", "is_dir": False,
                                                       "size": 1, "mod_time": 0}]),
        ("GET", "/v1/fleets/web/machines/m1/logs"): Reply(200, body=ndjson(
            {"timestamp": 1, "message": f"\x1b[31mred\x1b[0m plain {TITLE}{CLEAR}end", "source": "stdout"}),
            headers={"Content-Type": "application/x-ndjson"}),
        ("POST", "/v1/fleets/web/machines/m1/exec"): Reply(200, json={"stdout": f"\x1b[32mok\x1b[0m{TITLE}\n",
                                                                        "stderr": "", "exit_code": 0}),
        # an error whose detail the CLI shows as the server wrote it (a delete of a running machine is now said in
        # the CLI's own words, so the events route carries it)
        ("GET", "/v1/fleets/web/machines/m1/events"): Reply(409, json={"detail": f"cannot{TITLE}{CLEAR} list"}),
    }
    server.handler = lambda request: routes.get((request.method, request.path), Reply(404, json={"detail": "no"}))


def inert(screen: str) -> None:
    assert "\x1b]" not in screen and "\x07" not in screen and "\x1b[2J" not in screen and "\u202e" not in screen, \
        repr(screen)
    assert "\\x1b]0;PWNED\\x07" in screen, repr(screen)


@pytest.mark.parametrize("argv", [["machines", "list"], ["machines", "show", "m1"], ["fs", "ls", "m1"],
                                  ["fs", "ls", "-l", "m1"], ["machines", "events", "m1"]],
                         ids=lambda a: " ".join(a))
def test_server_text_is_inert_on_a_terminal(fault_server, tmp_path, argv):
    serve(fault_server)
    env = cli_env_for(fault_server, tmp_path)
    env["NO_COLOR"] = "1"
    _, screen = on_terminal(argv, env, columns=200)
    inert(screen)


def test_server_text_in_tables_piped_is_inert_too(fault_server, tmp_path):
    serve(fault_server)
    result = run_main(["machines", "list"], cli_env_for(fault_server, tmp_path))
    assert result.code == 0 and "\x1b" not in result.out and "\\x1b]0;PWNED\\x07" in result.out


def test_error_details_are_inert(fault_server, tmp_path):
    serve(fault_server)
    result = run_main(["machines", "events", "m1"], cli_env_for(fault_server, tmp_path))
    assert result.code == 1 and "\x1b" not in result.err and "cannot\\x1b]0;PWNED" in result.err, result.err


def test_json_is_unchanged(fault_server, tmp_path):
    serve(fault_server)
    result = run_main(["machines", "list", "--json"], cli_env_for(fault_server, tmp_path))
    assert json.loads(result.out) == [MACHINE]


def test_log_lines_on_a_terminal_keep_colour_and_nothing_else(fault_server, tmp_path):
    serve(fault_server)
    env = cli_env_for(fault_server, tmp_path)
    _, screen = on_terminal(["logs", "m1"], env, columns=200)
    assert "\x1b[31mred\x1b[0m plain" in screen, repr(screen)
    inert(screen)
    # piped, a log line is passed on as written
    piped = run_cli("logs", "m1", env=env)
    assert f"{TITLE}{CLEAR}end" in piped.stdout


def test_exec_output_on_a_terminal_keeps_colour_and_nothing_else(fault_server, tmp_path):
    serve(fault_server)
    env = cli_env_for(fault_server, tmp_path)
    _, screen = on_terminal(["machines", "exec", "m1", "--", "true"], env, columns=200)
    assert "\x1b[32mok\x1b[0m" in screen, repr(screen)
    inert(screen)
    piped = run_cli("machines", "exec", "m1", "--", "true", env=env)
    assert piped.stdout == f"\x1b[32mok\x1b[0m{TITLE}\n"


@pytest.mark.parametrize("argv", [
    ["machines", "create", "--image", f"nginx{TITLE}"],
    ["machines", "create", "--image", "nginx", "--region", f"gra{CLEAR}"],
    ["machines", "create", "--image", "nginx", "--user", "ro\u202eot"],
    ["machines", "create", "--image", "nginx", "--fleet", f"web{CLEAR}"],
    ["machines", "show", f"m1{TITLE}"],
    ["fleets", "create", f"web{CLEAR}"],
    ["gateways", "create", "--name", f"gw{TITLE}", "--port", "80"],
], ids=lambda a: " ".join(a[:2]) + " " + a[-1][:6].encode("unicode_escape").decode())
def test_names_and_images_with_control_characters_are_refused(fault_server, tmp_path, argv):
    result = run_main(argv, cli_env_for(fault_server, tmp_path))
    assert result.code == 2, result
    assert fault_server.requests == []
    assert "\x1b" not in result.err


def test_a_config_file_image_with_control_characters_is_refused(fault_server, tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"region": "gra-1", "config": {"image": f"nginx{TITLE}",
                                                              "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}}}))
    result = run_main(["machines", "create", "--config", str(path)], cli_env_for(fault_server, tmp_path))
    assert result.code == 2 and "control characters" in result.err, result
    assert fault_server.requests == []


def test_fleet_logs_machine_prefixes_are_inert_on_a_terminal(fault_server, tmp_path):
    evil = f"m{CLEAR}2"
    machine = {"id": evil, "fleet": "web", "state": "running"}
    routes = {
        ("GET", "/v1/fleets/web/machines"): Reply(200, json=[machine]),
        ("GET", f"/v1/fleets/web/machines/m%1B%5B2J2/logs"): Reply(200, body=ndjson(
            {"timestamp": 1, "message": "hello", "source": "stdout"}), headers={"Content-Type": "application/x-ndjson"}),
    }
    fault_server.handler = lambda r: routes.get((r.method, r.path), Reply(404, json={"detail": "no"}))
    env = cli_env_for(fault_server, tmp_path)
    env["NO_COLOR"] = "1"
    code, screen = on_terminal(["logs"], env, columns=200)
    assert code == 0, screen
    assert "hello" in screen and "\x1b[2J" not in screen and "m\\x1b[2J2" in screen, repr(screen)


def test_completion_never_offers_a_name_with_a_control_character(fault_server, tmp_path):
    from valyent_cli.cli import complete

    fault_server.handler = lambda r: Reply(200, json=[{"id": "f1", "name": "good"}, {"id": "f2", "name": f"bad{TITLE}"}])
    env = {**cli_env_for(fault_server, tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           complete.ENV_KIND: "fleet", complete.ENV_LINE: "valyent machines list --fleet "}
    result = run_cli(env=env)
    assert result.returncode == 0
    offered = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert "good" in offered and not any("\x1b" in v or "\x07" in v for v in result.stdout), offered


def serve_build(server: FaultServer) -> None:
    """A build whose log carries a title, a clear-screen and an OSC 52 clipboard write (issue 27, item 10)."""
    build = {"id": "b1", "status": "completed", "full_image": "localhost/app:latest"}
    log = f"\x1b[31mred\x1b[0m step {TITLE}{CLEAR}\x1b]52;c;cGF5bG9hZA==\x07end\n".encode()

    def handler(request):
        if request.path.endswith("/builds/b1/logs"):
            return Reply(200, body=log, headers={"Content-Type": "text/plain"})
        if request.path.endswith("/builds/b1") or (request.method == "POST" and request.path.endswith("/builds")):
            return Reply(200, json=build)
        return Reply(404, json={"detail": "no"})

    server.handler = handler


@pytest.mark.parametrize("argv", [["builds", "logs", "b1"], ["builds", "logs", "-f", "b1"],
                                  ["builds", "create", "{ctx}", "--image", "app", "--registry", "registry.example.com/team"]], ids=lambda a: " ".join(a[:3]))
def test_build_logs_on_a_terminal_keep_colour_and_nothing_else(fault_server, tmp_path, argv):
    serve_build(fault_server)
    env = cli_env_for(fault_server, tmp_path)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    argv = [str(ctx) if a == "{ctx}" else a for a in argv]
    code, screen = on_terminal(argv, env, columns=200)
    assert code == 0, screen
    assert "\x1b[31mred\x1b[0m step" in screen, repr(screen)
    inert(screen)
    assert "\\x1b]52;c;cGF5bG9hZA==\\x07end" in screen, repr(screen)
    if argv[1] == "logs":  # piped, a build's log is passed on as written
        piped = run_cli(*argv, env=env)
        assert f"{TITLE}{CLEAR}\x1b]52;c;" in piped.stdout
