"""One printer for every command: only cli/output.py writes to stdout/stderr, and every failure (the sandbox's
`local` commands included) goes through the one error handler, cli/errors.py, with its documented exit codes."""

from __future__ import annotations

import re
from pathlib import Path

from support.cli import run_cli

PACKAGE = Path(__file__).resolve().parents[2] / "valyent_cli"
#: the module that prints
PRINTER = PACKAGE / "cli" / "output.py"
DIRECT = re.compile(
    r"sys\.(?:stdout|stderr)\.(?:buffer\.)?write\("
    r"|(?<![\w.])print\("
    r"|\b(?:typer|click)\.(?:echo|secho)\("
    r"|traceback\.print_exc(?:eption)?\("
    r"|\.buffer\.write\("
)


def _sources() -> list[Path]:
    return sorted(p for d in ("cli", "commands") for p in (PACKAGE / d).rglob("*.py") if p != PRINTER)


def test_only_output_prints():
    assert len(_sources()) > 20  # the walk found the modules
    found = [f"{path.relative_to(PACKAGE)}:{number}: {text.strip()}"
             for path in _sources()
             for number, text in enumerate(path.read_text().splitlines(), 1)
             if DIRECT.search(text) and not text.lstrip().startswith("#")]
    assert not found, "print through cli/output.py (Output), not directly:\n" + "\n".join(found)


def test_the_pattern_sees_direct_prints():
    for text in ('sys.stderr.write("x")', "print(x)", "typer.echo(m, err=True)", "stream.buffer.write(data)",
                 "traceback.print_exception(exc, file=sys.stderr)", 'sys.stdout.write(line + "\\n")'):
        assert DIRECT.search(text), text
    assert not DIRECT.search("_print(app_, fleet)") and not DIRECT.search("spool.write(b)")


def test_local_maps_no_exit_codes_of_its_own():
    source = (PACKAGE / "commands" / "local.py").read_text()
    assert "typer.Exit(" not in source, "raise CliError/UsageError: cli/errors.py maps exit codes"


def test_a_local_failure_goes_through_the_error_handler(tmp_path):
    """`local serve` refusing a remote host: exit 2 (usage), one `Error:` line from the handler, no traceback."""
    from support.env import cli_environ, free_port

    env = cli_environ(tmp_path / "config", local_dir=tmp_path / "sbx")
    r = run_cli("local", "serve", "--host", "0.0.0.0", "--port", str(free_port()), env=env, timeout=30)
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    assert [line for line in r.stderr.splitlines() if line.startswith("Error: ")] != []
    assert "Traceback" not in r.stderr
