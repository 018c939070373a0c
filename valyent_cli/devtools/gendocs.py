"""Write the shell completions and man pages from the live command tree.

    python -m valyent_cli.devtools.gendocs            # rewrite completions/ and man/ in the repository
    python -m valyent_cli.devtools.gendocs --out DIR  # write them under DIR instead (tests compare the two)

Everything is derived from the click-level tree that Typer builds (`typer.main.get_command(app)`): commands,
their help and examples, options with their defaults, and which parameters complete from the API. The output is
deterministic (no dates; the only version is `valyent_cli.__version__`), so a test can regenerate it and fail on
any difference from what is committed.

The completion scripts know the command tree statically (commands, options, fixed choices, and which values
come from the API) and run the program only for those values: fleets, machines, gateways, profiles (see
valyent_cli.cli.complete for that request). `valyent completion SHELL` prints the same scripts.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROG = "valyent"
REPO = Path(__file__).resolve().parents[2]
REGENERATE = "python -m valyent_cli.devtools.gendocs"

# -- the command tree ---------------------------------------------------------------------------------------------


@dataclass
class Values:
    """How the value of an option or argument completes: files, fixed choices, or from the program."""

    kind: str  # "files" | "choices" | "dynamic" | "none"
    choices: tuple[str, ...] = ()
    dynamic: str = ""  # fleet, machine, gateway, profile


@dataclass
class Opt:
    names: list[str]  # e.g. ["-i", "--image"]
    secondary: list[str]  # e.g. ["--no-wait"] for --wait/--no-wait
    takes_value: bool
    multiple: bool
    required: bool
    help: str
    metavar: str
    default: str  # "" when there is none worth showing
    envvar: str
    values: Values


@dataclass
class Arg:
    name: str  # metavar, e.g. MACHINE
    required: bool
    variadic: bool
    help: str
    default: str
    values: Values


@dataclass
class Node:
    path: list[str]  # ["machines", "create"]; [] for the root
    help: str
    short_help: str
    options: list[Opt]
    args: list[Arg]
    children: list[Node] = field(default_factory=list)

    @property
    def is_group(self) -> bool:
        return bool(self.children)

    @property
    def key(self) -> str:
        return " ".join(self.path)

    @property
    def page(self) -> str:
        return "-".join([PROG, *self.path])

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


def live_tree() -> Node:
    """The command tree of the installed program, as it is now."""
    import typer.main

    from valyent_cli.cli import complete
    from valyent_cli.main import full_app

    app = full_app()

    root = typer.main.get_command(app)
    complete.introspecting = True
    try:
        return _node(root, [], None)
    finally:
        complete.introspecting = False


def _node(cmd: Any, path: list[str], parent: Any) -> Node:
    import typer

    settings = {**(cmd.context_settings or {}), "resilient_parsing": True}
    ctx = typer.Context(cmd, info_name=path[-1] if path else PROG, parent=parent, **settings)
    options: list[Opt] = []
    args: list[Arg] = []
    for param in cmd.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            args.append(_arg(param, ctx))
        else:
            options.append(_opt(param, ctx))
    help_ = _clean(cmd.help or "")
    node = Node(path, help_, _first_sentence(help_), options, args)
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        if not sub.hidden:
            node.children.append(_node(sub, [*path, name], ctx))
    return node


def _clean(text: str) -> str:
    import inspect

    return inspect.cleandoc(text).strip()


def _first_sentence(text: str) -> str:
    first = text.split("\n\n", 1)[0].replace("\n", " ").strip()
    return first


def _values(param: Any, ctx: Any) -> Values:
    from valyent_cli.cli import complete

    try:
        items = param.shell_complete(ctx, "")
    except Exception:  # noqa: BLE001 - a parameter that cannot say is completed as files
        items = []
    if any(item.value == complete.DYNAMIC for item in items):
        kind = next(item.help for item in items if item.value == complete.DYNAMIC)
        return Values("dynamic", dynamic=str(kind))
    if items and all(getattr(item, "type", "plain") == "plain" for item in items):
        return Values("choices", tuple(str(item.value) for item in items))
    # Without a completer, only what names a local file completes as files: an image or a port would not.
    words = set(re.split(r"[_\W]+", f"{param.name} {param.metavar or ''}".lower()))
    on_machine = "on the machine" in (param.help or "")
    if items or (words & _FILE_WORDS and not on_machine):
        return Values("files")
    return Values("none")


_FILE_WORDS = {"file", "path", "config", "dir", "directory", "local"}


def _opt(param: Any, ctx: Any) -> Opt:
    takes_value = not param.is_flag and not param.count
    names = sorted(param.opts, key=lambda n: (n.startswith("--"), n))
    default = ""
    if param.is_flag and param.secondary_opts:
        default = (param.opts[0] if param.default else param.secondary_opts[0]) if param.default is not None else ""
    elif isinstance(param.show_default, str):
        default = param.show_default
    elif takes_value:
        value = param.get_default(ctx, call=False)
        if value not in (None, (), []) and not callable(value):
            default = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    long_name = next((n for n in names if n.startswith("--")), names[0])
    metavar = param.metavar or long_name.lstrip("-").replace("-", "_").upper()
    envvar = param.envvar if isinstance(param.envvar, str) else ", ".join(param.envvar or ())
    return Opt(
        names=names,
        secondary=list(param.secondary_opts),
        takes_value=takes_value,
        multiple=bool(param.multiple),
        required=bool(param.required),
        help=_clean(param.help or ""),
        metavar=metavar if takes_value else "",
        default=default,
        envvar=envvar,
        values=_values(param, ctx) if takes_value else Values("none"),
    )


def _arg(param: Any, ctx: Any) -> Arg:
    value = param.get_default(ctx, call=False)
    default = "" if value in (None, (), []) or callable(value) else str(value)
    return Arg(
        name=(param.metavar or param.name).upper(),
        required=bool(param.required),
        variadic=param.nargs == -1,
        help=_clean(param.help or ""),
        default=default,
        values=_values(param, ctx),
    )


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
EXEC_STATUS = "`machines exec` exits with the remote command's own exit code, and 255 if the command could not be run."

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
    ("VALYENT_DEBUG", "Set to 1 for the effect of --debug."),
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
        extra.append("one of: " + ", ".join(opt.values.choices))
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
        lines += [".PP", rf"The global options of \fBvalyent\fR(1) (\fB\-\-profile\fR, \fB\-\-endpoint\fR, ...) go "
                  rf"before the command name: \fBvalyent \-\-profile\fR \fINAME\fR \fB{roff(' '.join(node.path))}\fR ..."]
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

HEADER = "{comment} {shell} completion for valyent. Generated by `{cmd}` from the command tree: do not edit.\n"


def _protocol(kind: str, shell_line: str) -> str:
    """The environment that asks the program for values (see valyent_cli.cli.complete): `value<TAB>help` lines."""
    from valyent_cli.cli.complete import ENV_KIND, ENV_LINE

    return f"{ENV_KIND}={kind} {ENV_LINE}={shell_line}"


def _bash_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def bash_script(root: Node) -> str:
    subs: dict[str, str] = {}
    opts: dict[str, str] = {}
    value_opts: dict[str, str] = {}
    values: dict[str, str] = {}
    args: dict[str, str] = {}
    arg_choices: dict[str, str] = {}

    def spec(v: Values) -> str:
        if v.kind == "choices":
            return "s:" + " ".join(v.choices)
        if v.kind == "dynamic":
            return "d:" + v.dynamic
        return {"files": "f"}.get(v.kind, "n")

    for node in root.walk():
        bkey = " ".join([PROG, *node.path])  # bash has no empty keys: the root is "valyent"
        if node.is_group:
            subs[bkey] = " ".join(c.path[-1] for c in node.children)
        names = [n for o in node.options for n in (*o.names, *o.secondary)]
        opts[bkey] = " ".join(names)
        value_opts[bkey] = " ".join(n for o in node.options if o.takes_value for n in o.names)
        for o in node.options:
            if o.takes_value:
                for n in o.names:
                    values[f"{bkey} {n}"] = spec(o.values)
        kinds = []
        for i, a in enumerate(node.args):
            s = spec(a.values)
            if s.startswith("s:"):
                arg_choices[f"{bkey} {i}"] = s[2:]
                s = "s"
            kinds.append(s + ("*" if a.variadic else ""))
        if node.args:
            args[bkey] = " ".join(kinds)

    def table(name: str, data: dict[str, str]) -> str:
        rows = "\n".join(f"    [{_bash_quote(k)}]={_bash_quote(v)}" for k, v in data.items())
        return f"declare -gA {name}=(\n{rows}\n)\n"

    body = BASH_FUNCTION.replace("@PROTOCOL@", _protocol('"${spec#d:}"', '"$line"'))
    return (
        HEADER.format(comment="#", shell="bash", cmd=REGENERATE)
        + "# Commands, options and fixed choices are below; values from the API (fleets, machines, gateways,\n"
        + "# profiles) come from the program itself. Needs bash 4.2 or later.\n\n"
        + table("_valyent_subcommands", subs)
        + table("_valyent_options", opts)
        + table("_valyent_value_options", value_opts)
        + table("_valyent_values", values)
        + table("_valyent_arguments", args)
        + table("_valyent_argument_choices", arg_choices)
        + body
    )


BASH_FUNCTION = r"""
_valyent() {
    local line=${COMP_LINE:0:COMP_POINT}
    local -a words
    read -ra words <<< "$line"
    local cur=""
    if [[ $line != *[[:space:]] ]] && (( ${#words[@]} > 1 )); then
        cur=${words[-1]}
        unset 'words[-1]'
    fi
    local path=valyent expect="" w i npos=0 dashdash=0
    for ((i = 1; i < ${#words[@]}; i++)); do
        w=${words[i]}
        if [[ -n $expect ]]; then
            expect=""
            continue
        fi
        if (( ! dashdash )); then
            if [[ $w == -- ]]; then
                dashdash=1
                continue
            fi
            if [[ $w == -?* ]]; then
                if [[ $w != *=* && " ${_valyent_value_options[$path]} " == *" $w "* ]]; then
                    expect=$w
                fi
                continue
            fi
            if [[ -n ${_valyent_subcommands[$path]+set} ]]; then
                if [[ " ${_valyent_subcommands[$path]} " == *" $w "* ]]; then
                    path="$path $w"
                fi
                continue
            fi
        fi
        npos=$((npos + 1))
    done

    local spec="" prefix=$cur
    if [[ -n $expect ]]; then
        spec=${_valyent_values["$path $expect"]-f}
    elif (( ! dashdash )) && [[ $cur == --*=* ]]; then
        spec=${_valyent_values["$path ${cur%%=*}"]-f}
        prefix=${cur#*=}
    elif (( ! dashdash )) && [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "${_valyent_options[$path]}" -- "$cur"))
        return 0
    elif [[ -n ${_valyent_subcommands[$path]+set} ]]; then
        COMPREPLY=($(compgen -W "${_valyent_subcommands[$path]}" -- "$cur"))
        return 0
    else
        local -a kinds=(${_valyent_arguments[$path]-})
        local n=$npos
        if (( n >= ${#kinds[@]} )); then
            if (( ${#kinds[@]} == 0 )) || [[ ${kinds[-1]} != *'*' ]]; then
                return 0
            fi
            n=$((${#kinds[@]} - 1))
        fi
        spec=${kinds[n]%'*'}
        if [[ $spec == s ]]; then
            spec="s:${_valyent_argument_choices["$path $n"]}"
        fi
    fi

    case $spec in
        s:*)
            COMPREPLY=($(compgen -W "${spec#s:}" -- "$prefix"))
            ;;
        n)
            COMPREPLY=()
            ;;
        d:*)
            local IFS=$'\n' item
            COMPREPLY=()
            for item in $(@PROTOCOL@ "${words[0]}" 2>/dev/null); do
                COMPREPLY+=("${item%%$'\t'*}")
            done
            ;;
        *)
            compopt -o default 2>/dev/null
            COMPREPLY=()
            ;;
    esac
    return 0
}

complete -F _valyent valyent
"""


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _zsh_desc(text: str) -> str:
    """A description inside an _arguments [...] spec."""
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace("\n", " ")


def _zsh_action(v: Values) -> str:
    if v.kind == "choices":
        return "(" + " ".join(v.choices) + ")"
    if v.kind == "dynamic":
        return "_valyent_dynamic " + v.dynamic
    return "_files" if v.kind == "files" else " "


def _zsh_function(node: Node) -> str:
    name = "_valyent" + "".join("_" + re.sub(r"\W", "_", p) for p in node.path) + "_cmd"
    specs = []
    for o in node.options:
        every = [*o.names, *o.secondary]
        exclusive = "" if o.multiple or len(every) == 1 else "(" + " ".join(every) + ")"
        star = "*" if o.multiple else ""
        desc = _zsh_desc(_first_sentence(o.help))
        for n in o.names:
            if o.takes_value:
                suffix = "=" if n.startswith("--") else "+"
                message = o.metavar.lower().replace(":", " ")
                specs.append(f"{exclusive}{star}{n}{suffix}[{desc}]:{message}:{_zsh_action(o.values)}")
            else:
                specs.append(f"{exclusive}{star}{n}[{desc}]")
        for n in o.secondary:
            specs.append(f"{exclusive}{n}[{desc}]")
    if node.is_group:
        specs += ["1:command:->command", "*::argument:->argument"]
    for a in node.args:
        message = a.name.lower().replace(":", " ")
        if a.variadic:
            specs.append(f"*:{message}:{_zsh_action(a.values)}")
        else:
            specs.append(f"{'' if a.required else ':'}:{message}:{_zsh_action(a.values)}")
    lines = [f"{name}() {{"]
    if node.is_group:
        lines += ["    local curcontext=$curcontext state state_descr line", "    local -A opt_args"]
    args = " \\\n        ".join(_zsh_quote(s) for s in specs)
    lines.append(f"    _arguments -s -S {'-C ' if node.is_group else ''}\\\n        {args}" + (" && return" if node.is_group else ""))
    if node.is_group:
        lines += ["    case $state in", "        command)", "            local -a commands=("]
        for child in node.children:
            entry = child.path[-1].replace(":", "\\:") + ":" + child.short_help
            lines.append(f"                {_zsh_quote(entry)}")
        lines += ["            )", "            _describe -t commands command commands", "            ;;",
                  "        argument)", "            case $words[1] in"]
        for child in node.children:
            child_fn = "_valyent" + "".join("_" + re.sub(r"\W", "_", p) for p in child.path) + "_cmd"
            lines.append(f"                {child.path[-1]}) {child_fn} ;;")
        lines += ["            esac", "            ;;", "    esac"]
    lines.append("}")
    return "\n".join(lines) + "\n"


ZSH_HEAD = r"""
# Values from the API (fleets, machines, gateways, profiles) come from the program, given their kind (the last
# argument: _arguments puts compadd options before it) and the command line as typed up to the cursor.
_valyent_dynamic() {
    local -a lines items
    local item value help
    lines=("${(@f)$(@PROTOCOL@ "${_valyent_prog}" 2>/dev/null)}")
    for item in "${lines[@]}"; do
        [[ -n $item ]] || continue
        value=${item%%$'\t'*}
        help=""
        [[ $item == *$'\t'* ]] && help=${item#*$'\t'}
        items+=("${value//:/\\:}${help:+:$help}")
    done
    (( ${#items} )) && _describe -t values value items
}

_valyent() {
    local _valyent_prog=${words[1]}
    local _valyent_line="${(j: :)${(@)words[1,CURRENT-1]}} ${PREFIX}"
    _valyent_cmd "$@"
}
"""


def zsh_script(root: Node) -> str:
    head = ZSH_HEAD.replace("@PROTOCOL@", _protocol('"${@[-1]}"', '"${_valyent_line}"'))
    functions = "\n".join(_zsh_function(node) for node in root.walk())
    return (
        "#compdef valyent\n"
        + HEADER.format(comment="#", shell="zsh", cmd=REGENERATE)
        + head
        + "\n"
        + functions
        + '\nif [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n    _valyent "$@"\nelse\n    compdef _valyent valyent\nfi\n'
    )


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


FISH_HEAD = r"""
# The command path typed so far (e.g. "machines create"), from the tokens before the cursor.
function __valyent_path
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l path ''
    set -l skip 0
    for tok in $tokens
        if test $skip -eq 1
            set skip 0
            continue
        end
        switch $tok
            case '--'
                break
            case '-?*'
                if not string match -q -- '*=*' $tok; and contains -- $tok (__valyent_value_options "$path")
                    set skip 1
                end
                continue
        end
        if contains -- $tok (__valyent_subcommands "$path")
            set path (string trim -- "$path $tok")
        end
    end
    echo $path
end

# Whether the command path is $argv[1]; computed once per command line.
function __valyent_at
    set -l line (commandline -pc)
    if test "$line" != "$__valyent_line"
        set -g __valyent_line $line
        set -g __valyent_current (__valyent_path)
    end
    test "$__valyent_current" = "$argv[1]"
end

# Values from the API (fleets, machines, gateways, profiles) of kind $argv[1], from the program.
function __valyent_dynamic
    set -l tokens (commandline -opc)
    env @PROTOCOL@ $tokens[1] 2>/dev/null
end
"""


def fish_script(root: Node) -> str:
    out = [HEADER.format(comment="#", shell="fish", cmd=REGENERATE)]
    out.append(FISH_HEAD.replace("@PROTOCOL@", _protocol("$argv[1]", "(commandline -cp)")))
    subs = ["function __valyent_subcommands", "    switch $argv[1]"]
    vopts = ["function __valyent_value_options", "    switch $argv[1]"]
    for node in root.walk():
        if node.is_group:
            subs += [f"        case {_fish_quote(node.key)}", "        printf '%s\\n' " + " ".join(c.path[-1] for c in node.children)]
        names = [n for o in node.options if o.takes_value for n in o.names]
        if names:
            vopts += [f"        case {_fish_quote(node.key)}", "        string split ' ' -- " + _fish_quote(" ".join(names))]
    subs += ["    end", "end"]
    vopts += ["    end", "end"]
    out += ["\n".join(subs), "\n", "\n".join(vopts), "\n\ncomplete -c valyent -f\n"]
    for node in root.walk():
        cond = f"-n {_fish_quote('__valyent_at ' + _fish_quote(node.key))}"
        out.append(f"\n# valyent {node.key}".rstrip() + "\n")
        for child in node.children:
            out.append(f"complete -c valyent {cond} -a {_fish_quote(child.path[-1])} -d {_fish_quote(child.short_help)}\n")
        for o in node.options:
            parts = ["complete -c valyent", cond]
            for n in o.names:
                parts.append(f"-l {n[2:]}" if n.startswith("--") else f"-s {n[1:]}")
            if o.takes_value:
                if o.values.kind == "choices":
                    parts.append("-x -a " + _fish_quote(" ".join(o.values.choices)))
                elif o.values.kind == "dynamic":
                    parts.append(f"-x -a '(__valyent_dynamic {o.values.dynamic})'")
                elif o.values.kind == "files":
                    parts.append("-r -F")
                else:
                    parts.append("-x")
            parts.append("-d " + _fish_quote(_first_sentence(o.help)))
            out.append(" ".join(parts) + "\n")
            for n in o.secondary:
                out.append(f"complete -c valyent {cond} -l {n[2:]} -d {_fish_quote(_first_sentence(o.help))}\n")
        kinds = {a.values.kind for a in node.args}
        for dynamic in dict.fromkeys(a.values.dynamic for a in node.args if a.values.kind == "dynamic"):
            out.append(f"complete -c valyent {cond} -a '(__valyent_dynamic {dynamic})'\n")
        for a in node.args:
            if a.values.kind == "choices":
                out.append(f"complete -c valyent {cond} -a {_fish_quote(' '.join(a.values.choices))}\n")
        if "files" in kinds:
            out.append(f"complete -c valyent {cond} -F\n")
    return "".join(out)


SCRIPTS = {"bash": ("valyent.bash", bash_script), "zsh": ("_valyent", zsh_script), "fish": ("valyent.fish", fish_script)}


def completion_script(shell: str, root: Node | None = None) -> str:
    """The completion script for bash, zsh or fish, from the live command tree."""
    return SCRIPTS[shell][1](root or live_tree())


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
