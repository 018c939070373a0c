"""Write the shell completions and man pages from the live command tree.

    python -m valyent_cli.devtools.gendocs            # rewrite completions/ and man/ in the repository
    python -m valyent_cli.devtools.gendocs --out DIR  # write them under DIR instead (tests compare the two)

Everything is derived from the click-level tree that Typer builds (`typer.main.get_command(app)`): commands,
their help and examples, options with their defaults, and which parameters complete from the API. The output is
deterministic (no dates; the only version is `valyent_cli.__version__`), so a test can regenerate it and fail on
any difference from what is committed.

The command tree comes from valyent_cli.cli.tree and the completion scripts from valyent_cli.cli.completion_scripts,
the run-time modules that `valyent completion SHELL` uses; this module adds the man pages and writes the files.
It is a development tool: nothing in the program imports it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from valyent_cli.cli.completion_scripts import REGENERATE, SCRIPTS, completion_script  # noqa: F401 - re-exported
from valyent_cli.cli.tree import PROG, Node, Opt, Arg, live_tree  # noqa: F401 - re-exported

REPO = Path(__file__).resolve().parents[2]

# -- help text: description paragraphs and examples -----------------------------------------------------------------


def split_help(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The help text as (kind, text) blocks ("para" or "literal") and its examples, in order.

    Docstrings carry examples as `Example: CMD` paragraphs, or an `Examples:` heading followed by indented lines
    (optionally behind click's no-rewrap marker, a form feed-less `\\b` line).
    """
    blocks: list[tuple[str, str]] = []
    examples: list[str] = []
    in_examples = False
    for raw in re.split(r"\n\s*\n", text):
        lines = [line for line in raw.split("\n") if line.strip() != "\b"]
        if not lines:
            continue
        first = lines[0].strip()
        indented = all(line.startswith((" ", "\t")) for line in lines if line.strip())
        if re.fullmatch(r"Examples?:", first) and len(lines) == 1:
            in_examples = True
            continue
        m = re.match(r"Examples?:\s*(\S.*)$", first)
        if m:
            examples.append(" ".join([m.group(1), *(line.strip() for line in lines[1:])]))
            in_examples = False
            continue
        if re.fullmatch(r"Examples?:", first):
            examples.extend(line.strip() for line in lines[1:] if line.strip())
            in_examples = True
            continue
        if in_examples and indented:
            examples.extend(line.strip() for line in lines if line.strip())
            continue
        in_examples = False
        if indented:
            blocks.append(("literal", "\n".join(line.strip() for line in lines)))
        else:
            blocks.append(("para", " ".join(line.strip() for line in lines)))
    return blocks, examples


# -- roff ---------------------------------------------------------------------------------------------------------

_GLYPHS = {"\u2014": r"\(em", "\u2013": r"\(en", "\u2018": r"\(oq", "\u2019": r"\(cq", "\u201c": r"\(lq",
           "\u201d": r"\(rq", "\u2026": "...", "\u00a0": r"\ ", "\u2192": r"\(->", "\u00d7": r"\(mu"}


def roff(text: str) -> str:
    """Escape text for roff: backslashes, dashes, non-ASCII, and (per line) a leading dot or quote."""
    out = text.replace("\\", r"\e").replace("-", r"\-")
    out = "".join(_GLYPHS.get(c, f"\\[u{ord(c):04X}]") if ord(c) > 126 or (ord(c) < 32 and c != "\n") else c for c in out)
    return "\n".join(rf"\&{line}" if line.startswith((".", "'")) else line for line in out.split("\n"))


def roff_inline(text: str) -> str:
    """Prose: `code` in bold, the rest escaped; one line."""
    parts = re.split(r"`([^`]+)`", text)
    return "".join(roff(p) if i % 2 == 0 else rf"\fB{roff(p)}\fR" for i, p in enumerate(parts))


def _para(text: str) -> str:
    line = roff_inline(text)
    return rf"\&{line}" if line.startswith(("\\fB.", "\\fB'")) else line


EXIT_STATUS = [
    ("0", "Success."),
    ("1", "An API or runtime error."),
    ("2", "Bad usage or input, caught before any request was sent."),
    ("3", "Not authenticated, or forbidden."),
    ("4", "Not found."),
    ("5", "Timed out (a wait or a request)."),
    ("130", "Interrupted (Ctrl-C)."),
]
EXEC_STATUS = ("`machines exec` exits with the remote command's own exit code, 124 when --timeout stopped it, and 255 "
               "if the command could not be run.")
RUN_STATUS = ("`machines run` exits with the machine's own exit code (128+N when signal N killed it), 124 when "
              "--timeout stopped it, 1 when the machine could not start, and 130 after Ctrl-C.")

ENVIRONMENT = [
    ("VALYENT_API_TOKEN", "API token; overrides the profile's."),
    ("VALYENT_PROFILE", "Profile to use instead of the active one (like --profile)."),
    ("VALYENT_API_URL", "API base URL (like --endpoint)."),
    ("VALYENT_NAMESPACE", "Namespace sent with every request (like --namespace)."),
    ("VALYENT_FLEET", "Fleet to use when --fleet is not given."),
    ("VALYENT_REGION", "Default region for new machines."),
    ("VALYENT_INITD_URL", "URL template of a machine's agent (files and exec), with {machine_id}."),
    ("VALYENT_ALLOW_HTTP", "Allow sending the token over plain http to a non-loopback host."),
    ("VALYENT_CONFIG_DIR", "Directory of config.toml, instead of the platform's user config directory."),
    ("VALYENT_LOCAL_DIR", "Data directory of the local sandbox."),
    ("VALYENT_CPU_KIND", "Default CPU kind of new machines (like the profile's cpu_kind)."),
    ("VALYENT_AUTH_SCHEME", "How the token is sent to a self-hosted Ravel: bearer (default) or raw."),
    ("VALYENT_CA_CERT", "CA certificate (PEM file) to trust for the API, for a self-hosted Ravel."),
    ("VALYENT_CLIENT_CERT", "Client certificate (PEM file) for a Ravel that requires mutual TLS."),
    ("VALYENT_CLIENT_KEY", "Private key (PEM file) of VALYENT_CLIENT_CERT."),
    ("VALYENT_DEBUG", "Set to 1 for the effect of --debug."),
    ("VALYENT_STREAM_IDLE_TIMEOUT", "Seconds a silent live log stream is trusted before it is reopened (default 120)."),
    ("VALYENT_LOCAL_DRIVER", "How the local sandbox runs machines: auto, process, podman or docker (like "
                             "local start --driver)."),
    ("VALYENT_LOCAL_LOG_MAX_LINES", "Log lines the local sandbox keeps per machine (like local start --log-max-lines)."),
    ("VALYENT_LOCAL_LOG_MAX_BYTES", "Log bytes the local sandbox keeps per machine (like local start --log-max-bytes)."),
    ("VALYENT_LOCAL_ISOLATION", "Set to off to run the process driver's machines without namespaces."),
    ("VALYENT_LOCAL_HEADER_TIMEOUT", "Seconds a connection to the local sandbox (API or gateway) has to send a whole "
                                     "request head (default 15)."),
    ("VALYENT_LOCAL_MAX_CONNECTIONS", "Connections the local sandbox keeps per listener kind before closing the "
                                      "longest idle one (default 1000)."),
    ("VALYENT_LOCAL_GATEWAY_TIMEOUT", "Seconds a sandbox gateway waits on a silent machine before answering 504 "
                                      "(default 60)."),
    ("NO_COLOR", "When set, never use colour."),
]

FILES = [
    ("~/.config/valyent/config.toml",
     "Profiles and the active profile (the platform's user config directory, or $VALYENT_CONFIG_DIR). "
     "It holds tokens: it is written atomically with mode 0600."),
    ("valyent.toml",
     "Project file, looked up in the working directory and its parents: the fleet, region and machine defaults "
     "of a project. Flags and the environment take precedence over it, and it over the profile."),
    ("~/.cache/valyent/completion.json",
     "Shell completion's cache of API answers (10 seconds; no token)."),
]


def _th(node: Node) -> str:
    from valyent_cli import __version__

    title = roff(node.page.upper())
    return f'.TH "{title}" "1" "" "valyent {roff(__version__)}" "Valyent Manual"'


def _synopsis(node: Node) -> list[str]:
    pieces = [r"[\fIOPTIONS\fR]"] if node.options else []
    if node.is_group:
        pieces.append(r"\fICOMMAND\fR [\fIARGS\fR]...")
    for arg in node.args:
        name = rf"\fI{roff(arg.name)}\fR" + ("..." if arg.variadic else "")
        pieces.append(name if arg.required else f"[{name}]")
    cmd = " ".join([PROG, *node.path])
    return [".B " + roff(cmd), " ".join(pieces)] if pieces else [".B " + roff(cmd)]


def _option_item(opt: Opt) -> list[str]:
    head = ", ".join(rf"\fB{roff(n)}\fR" for n in opt.names)
    if opt.takes_value:
        head += rf" \fI{roff(opt.metavar)}\fR"
    if opt.secondary:
        head += ", " + ", ".join(rf"\fB{roff(n)}\fR" for n in opt.secondary)
    text = opt.help
    extra = []
    if opt.values.kind == "choices":
        extra.append(("usual values: " if opt.values.suggested else "one of: ") + ", ".join(opt.values.choices))
    if opt.default:
        extra.append(f"default: {opt.default}")
    if opt.envvar:
        extra.append(f"env: {opt.envvar}")
    if opt.multiple and "repeatable" not in text:
        extra.append("repeatable")
    if opt.required:
        extra.append("required")
    if extra:
        text = f"{text} ({'; '.join(extra)})" if text else "; ".join(extra).capitalize()
    return [".TP", head, _para(text)]


def _arg_item(arg: Arg) -> list[str]:
    head = rf"\fI{roff(arg.name)}\fR" + ("..." if arg.variadic else "")
    extra = []
    if arg.values.kind == "choices":
        extra.append("one of: " + ", ".join(arg.values.choices))
    if arg.default:
        extra.append(f"default: {arg.default}")
    if not arg.required:
        extra.append("optional")
    text = arg.help + (f" ({'; '.join(extra)})" if extra else "")
    return [".TP", head, _para(text)]


def man_page(node: Node, root: Node) -> str:
    lines = [
        f'.\\" Generated by `{REGENERATE}` from the command tree. Do not edit.',
        _th(node),
        ".SH NAME",
        rf"{roff(node.page)} \- {roff_inline(node.short_help or node.help)}",
        ".SH SYNOPSIS",
        *_synopsis(node),
        ".SH DESCRIPTION",
    ]
    blocks, examples = split_help(node.help)
    for kind, text in blocks:
        if kind == "para":
            lines += [".PP", _para(text)]
        else:
            lines += [".PP", ".RS 4", ".nf", roff(text), ".fi", ".RE"]
    if node.path and node.path != ["completion"]:
        lines += [".PP", rf"The global options of \fBvalyent\fR(1) (\fB\-\-profile\fR, \fB\-\-debug\fR, \fB\-\-no\-color\fR, ...) "
                  rf"go before or after the command name, not after \fB\-\-\fR: \fBvalyent "
                  rf"{roff(' '.join(node.path))}\fR ... \fB\-\-profile\fR \fINAME\fR"]
    if node.is_group:
        lines.append(".SH COMMANDS")
        for child in node.children:
            lines += [".TP", rf"\fB{roff(child.path[-1])}\fR", _para(child.short_help),
                      rf"See \fB{roff(child.page)}\fR(1)."]
    if node.args:
        lines.append(".SH ARGUMENTS")
        for arg in node.args:
            lines += _arg_item(arg)
    if node.options:
        lines.append(".SH OPTIONS")
        for opt in node.options:
            lines += _option_item(opt)
    if examples:
        lines.append(".SH EXAMPLES")
        for example in examples:
            lines += [".PP", ".RS 4", ".nf", roff(example), ".fi", ".RE"]
    lines.append(".SH EXIT STATUS")
    for code, text in EXIT_STATUS:
        lines += [".TP", rf"\fB{code}\fR", _para(text)]
    if not node.path or node.path[:2] == ["machines", "exec"] or node.path == ["machines"]:
        lines += [".PP", _para(EXEC_STATUS)]
    if not node.path or node.path[:2] == ["machines", "run"] or node.path == ["machines"]:
        lines += [".PP", _para(RUN_STATUS)]
    lines.append(".SH ENVIRONMENT")
    for name, text in ENVIRONMENT:
        lines += [".TP", rf"\fB{roff(name)}\fR", _para(text)]
    lines.append(".SH FILES")
    for name, text in FILES:
        lines += [".TP", rf"\fI{roff(name)}\fR", _para(text)]
    lines.append(".SH SEE ALSO")
    if not node.path:
        related = [child.page for child in node.children]
    else:
        related = [PROG, *(["-".join([PROG, *node.path[:-1]])] if len(node.path) > 1 else [])]
        related += [child.page for child in node.children]
    lines.append(",\n".join(rf"\fB{roff(page)}\fR(1)" for page in related))
    return "\n".join(lines) + "\n"


def man_pages(root: Node) -> dict[str, str]:
    return {f"{node.page}.1": man_page(node, root) for node in root.walk()}


# -- completion scripts -----------------------------------------------------------------------------------------



def render(root: Node | None = None) -> dict[str, str]:
    """Every generated file, by path relative to the repository."""
    root = root or live_tree()
    files = {f"completions/{name}": make(root) for name, make in SCRIPTS.values()}
    files.update({f"man/{name}": text for name, text in man_pages(root).items()})
    return files


def write(out: Path, files: dict[str, str]) -> list[str]:
    """Write the files under out, remove stale pages, and return what changed."""
    changed = []
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(rel)
    for stale in sorted((out / "man").glob("valyent*.1")):
        rel = f"man/{stale.name}"
        if rel not in files:
            stale.unlink()
            changed.append(rel)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO, help="directory to write completions/ and man/ in")
    ns = parser.parse_args(argv)
    changed = write(ns.out, render())
    for rel in changed:
        sys.stdout.write(f"wrote {rel}\n")
    if not changed:
        sys.stdout.write("up to date\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
