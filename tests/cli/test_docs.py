"""The generated man pages and completion scripts: committed, current, and clean for groff and the shells."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from support.cli import REPO

from valyent_cli.devtools import gendocs

REGENERATE = "run python -m valyent_cli.devtools.gendocs (and commit completions/ and man/)"


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return gendocs.render()


def test_committed_files_match_the_command_tree(generated, tmp_path):
    """No command, option or help text changes without its man page and completions."""
    gendocs.write(tmp_path, generated)
    stale = []
    for rel, text in generated.items():
        committed = REPO / rel
        if not committed.exists() or committed.read_text(encoding="utf-8") != (tmp_path / rel).read_text(encoding="utf-8"):
            stale.append(rel)
    extra = sorted(f"man/{p.name}" for p in (REPO / "man").glob("*.1") if f"man/{p.name}" not in generated)
    assert not stale and not extra, f"out of date: {stale}; no longer generated: {extra}: {REGENERATE}"


def test_output_is_deterministic(generated):
    assert gendocs.render() == generated


def test_a_page_per_group_and_command(generated):
    pages = {rel.removeprefix("man/") for rel in generated if rel.startswith("man/")}
    for page in ("valyent.1", "valyent-machines.1", "valyent-machines-create.1", "valyent-fleets-use.1",
                 "valyent-completion.1", "valyent-profiles-use.1"):
        assert page in pages


def test_command_page_sections(generated):
    page = generated["man/valyent-machines-create.1"]
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXAMPLES", "EXIT STATUS", "ENVIRONMENT", "FILES",
                    "SEE ALSO"):
        assert f".SH {section}\n" in page, section
    assert r"\fB\-\-wait\-timeout\fR \fIDURATION\fR" in page
    assert "default: 120s" in page
    assert r"valyent machines create \-\-image nginx" in page  # from the docstring's examples
    for name in ("VALYENT_API_TOKEN", "VALYENT_PROFILE", "VALYENT_API_URL", "VALYENT_NAMESPACE", "VALYENT_FLEET",
                 "VALYENT_INITD_URL", "VALYENT_CONFIG_DIR", "NO_COLOR"):
        assert name in page
    assert "config.toml" in page and "valyent.toml" in page
    assert r"\fBvalyent\-machines\fR(1)" in page
    assert "255" in generated["man/valyent-machines-exec.1"]
    assert '"valyent ' + __import__("valyent_cli").__version__ + '"' in page


def test_fixed_choices_are_documented(generated):
    assert "one of: running, stopped, destroyed" in generated["man/valyent-machines-wait.1"]


@pytest.mark.skipif(not shutil.which("groff"), reason="groff is not installed")
def test_man_pages_have_no_groff_warnings():
    pages = sorted((REPO / "man").glob("*.1"))
    assert pages
    for page in pages:
        result = subprocess.run(["groff", "-man", "-ww", "-z", str(page)], capture_output=True, text=True)
        assert result.returncode == 0 and result.stderr == "", f"{page.name}: {result.stderr}"


def test_roff_escapes():
    assert gendocs.roff("a-b \\ c") == r"a\-b \e c"
    assert gendocs.roff(".dot\n'quote") == "\\&.dot\n\\&'quote"
    assert gendocs.roff("\u2014") == r"\(em"


def test_examples_are_split_from_the_description():
    blocks, examples = gendocs.split_help(
        "Do it.\n\nMore words.\n\nExamples:\n\n\b\n  valyent a\n  valyent b\n\nExample: valyent c"
    )
    assert blocks == [("para", "Do it."), ("para", "More words.")]
    assert examples == ["valyent a", "valyent b", "valyent c"]


def test_every_command_has_an_example(generated):
    """Every leaf command's --help (and so its man page) shows at least one example."""
    pages = {name: text for name, text in generated.items() if name.startswith("man/valyent-") and name.count("-") >= 2}
    from valyent_cli.groups import GROUPS

    groups = {"man/valyent-" + g + ".1" for g in GROUPS}
    missing = sorted(name for name, text in pages.items() if name not in groups and ".SH EXAMPLES\n" not in text)
    assert missing == []


def test_packaging_metadata_uses_an_spdx_license_and_a_changelog_exists():
    """setuptools deprecates `project.license` as a table (builds stop after 2027-02-18): an SPDX string and a file."""
    import tomllib

    from support.cli import REPO

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"] and (REPO / "LICENSE").read_text().startswith("MIT License")
    assert (REPO / "CHANGELOG.md").read_text().startswith("# Changelog")


def _example_commands(help_text: str) -> list[str]:
    """The example command lines of a help text: indented lines of its blocks, and `Example: CMD`."""
    import inspect

    found = []
    for para in inspect.cleandoc(help_text).split("\n\n"):
        head, sep, rest = para.partition(": ")
        if sep and head in ("Example", "Examples"):
            found += [line.strip() for line in rest.split("\n") if line.strip()]
        elif all(line[:1] == " " for line in para.split("\n") if line.strip()):
            found += [line.strip() for line in para.split("\n") if line.strip()]
    return found


@pytest.mark.parametrize("columns", ["60", "80"])
def test_help_never_breaks_an_example_line(columns, tmp_path):
    """Issue 24, item 27: each example command of every help is one line of `--help`, at any width."""
    from support.cli import run_main
    from support.env import cli_environ

    from valyent_cli.cli.tree import live_tree

    env = {**cli_environ(tmp_path / "config"), "COLUMNS": columns}
    checked = 0
    for node in live_tree().walk():
        examples = [e for e in _example_commands(node.help) if len(e) > int(columns) - 6]
        if not examples:
            continue
        result = run_main([*node.path, "--help"], env)
        assert result.code == 0, result.err
        lines = [line.strip() for line in result.out.splitlines()]
        for example in examples:
            assert example in lines, (node.key, example, result.out)
            checked += 1
    assert checked > 5


def test_help_uses_the_terminals_width_up_to_a_cap(tmp_path):
    from support.cli import run_main
    from support.env import cli_environ

    from valyent_cli.cli import helpstyle

    env = cli_environ(tmp_path / "config")
    wide = run_main(["machines", "create", "--help"], {**env, "COLUMNS": "200"}).out
    prose = [line for line in wide.splitlines() if not line.strip().startswith(("valyent", "ID=$("))]
    assert max(map(len, prose)) > 100  # wider than click's 80
    assert max(map(len, prose)) <= helpstyle.MAX_WIDTH


def _variables_read_by_the_code() -> set[str]:
    """Every `VALYENT_*` name the code holds as a string of its own (an `os.environ` key, an `ENV_*` constant),
    less the markers the sandbox writes into its machines' environments, which it never reads from the user's."""
    import ast
    import re

    from valyent_cli.commands import app_detach
    from valyent_cli.local import procs
    from valyent_cli.local.drivers import container

    names: set[str] = set()
    for path in (REPO / "valyent_cli").rglob("*.py"):
        if "devtools" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"VALYENT_[A-Z0-9_]+", node.value):
                names.add(node.value)
    # markers the program sets for its own children, not settings
    return names - {procs.MACHINE_MARKER, procs.SANDBOX_MARKER, container.EXEC_MARKER, app_detach.ENV}


def test_valyent_1_environment_lists_every_variable_the_code_reads():
    """Issue 24, item 25: valyent(1)'s ENVIRONMENT, against the variables found in the code."""
    page = (REPO / "man" / "valyent.1").read_text()
    section = page.split(".SH ENVIRONMENT", 1)[1].split(".SH ", 1)[0]
    listed = set(re.findall(r"\\fB(VALYENT_[A-Z0-9_\\-]+)\\fR", section.replace("\\-", "-")))
    found = _variables_read_by_the_code()
    assert {"VALYENT_API_TOKEN", "VALYENT_LOCAL_DRIVER", "VALYENT_STREAM_IDLE_TIMEOUT"} <= found
    assert found <= {name.replace("\\_", "_") for name in listed}, sorted(found - listed)


def test_run_and_exec_pages_name_their_own_exit_codes():
    run_page = (REPO / "man" / "valyent-machines-run.1").read_text().split(".SH EXIT STATUS", 1)[1]
    exec_page = (REPO / "man" / "valyent-machines-exec.1").read_text().split(".SH EXIT STATUS", 1)[1]
    assert "machine's own exit code" in run_page and "124" in run_page
    assert "124" in exec_page and "255" in exec_page


def test_cpu_kind_help_and_man_page_agree():
    """`--cpu-kind` takes the server's templates: the page offers usual values, never a closed list."""
    page = (REPO / "man" / "valyent-machines-create.1").read_text()
    entry = page.split(r"\fB\-\-cpu\-kind\fR", 1)[1].split(".TP", 1)[0]
    assert "one of the server's templates" in entry
    assert "one of: shared" not in entry and "usual values: shared" in entry


def test_readme_command_table_names_every_group_and_command():
    """Issue 24, item 25: the README's table of commands, against the command tree."""
    from valyent_cli.cli.tree import live_tree
    from valyent_cli.groups import GROUPS

    text = (REPO / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z]+)` \| (.*) \|$", text, re.M))
    assert set(GROUPS) <= set(rows), sorted(set(GROUPS) - set(rows))
    missing = [node.key for node in live_tree().walk() if len(node.path) == 2 and node.path[0] != "completion"
               and not re.search(rf"`{re.escape(node.path[1])}[` ]", rows[node.path[0]])]
    assert not missing, missing


def test_readme_tour_makes_its_files_before_sending_them():
    text = (REPO / "README.md").read_text()
    tour = text.split("## A tour", 1)[1].split("```", 2)[1]
    made = tour.index("tar -czf app.tar.gz")
    assert made < tour.index("./app.tar.gz")
