"""Shell completion candidates: fleets, machines, gateways and profiles from the API, and fixed choices.

Parameters declare how their values complete with `autocompletion=` (e.g. `autocompletion=complete.machines`).
The completion scripts (cli/completion_scripts.py, printed by `valyent completion SHELL` and committed under
completions/) read those declarations and bake the command tree, options, fixed choices and the kind of each
API-backed value into the script. For
such a value the scripts run the program with two environment variables:

    _VALYENT_COMPLETE_VALUES=machine _VALYENT_COMPLETE_LINE="valyent machines show --fleet web 01" valyent

and it prints `value<TAB>description` lines. That request is answered by the entry point before typer is even
imported (`serve_if_asked`, called by valyent_cli/entry.py), without parsing the line with Typer, to stay
well under the 300 ms a Tab press may take. The same callbacks also serve Typer's own completion protocol.

Rules for everything here: fast (API answers cached for a few seconds, requests time out after about a second
and are never retried), silent (whatever it printed would land in the user's shell), and on any failure it offers
nothing. Module level imports stay in the standard library: options.py imports this module on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from valyent_cli.api.constants import LOG_SOURCES, RESTART_POLICIES, SIGNALS, STATES  # noqa: E402 - the one source
from valyent_cli.groups import RESOURCES

CPU_KINDS = ("shared", "eco", "std", "performance")
AUTH_SCHEMES = ("bearer", "raw")
DRIVERS = ("auto", "process", "podman", "docker")  # the sandbox's (local/drivers: DRIVERS; a test checks they agree)
SHELLS = ("bash", "zsh", "fish")

ENV_KIND = "_VALYENT_COMPLETE_VALUES"
ENV_LINE = "_VALYENT_COMPLETE_LINE"
CACHE_TTL = 10.0  # seconds: long enough for a burst of Tab presses, short enough to see a new machine soon
REQUEST_TIMEOUT = 1.0

# The command tree (cli/tree.py) learns which parameters complete from the API without calling it: it marks the
# context it passes with INTROSPECT in `ctx.meta` (shared by child contexts), and a dynamic callback then answers
# one item, DYNAMIC, whose help is its kind.
INTROSPECT = "valyent.introspect"
DYNAMIC = "\x00dynamic"


def _introspecting(ctx: Any) -> bool:
    meta = getattr(ctx, "meta", None)
    return bool(meta and meta.get(INTROSPECT))

Candidate = tuple[str, str]
Flags = dict[str, Any]  # profile, endpoint, namespace (global flags) and fleet, as typed


# -- static choices -----------------------------------------------------------------------------------------------
def _static(values: Iterable[str], help_: dict[str, str] | None = None) -> Callable[[str], list[Candidate]]:
    values = tuple(values)

    def complete(incomplete: str) -> list[Candidate]:
        return [(v, (help_ or {}).get(v, "")) for v in values if v.startswith(incomplete)]

    return complete


def choices(values: Iterable[str]) -> Callable[[str], list[Candidate]]:
    """A completer of a command's own fixed list (a profile's keys)."""
    return _static(values)


states = _static(STATES)
drivers = _static(DRIVERS)
signals = _static(SIGNALS)
restart_policies = _static(RESTART_POLICIES)
#: the description of values offered as usual examples, not a closed list (the docs say "e.g.", not "one of")
SUGGESTED = "a usual value"
cpu_kinds = _static(CPU_KINDS, dict.fromkeys(CPU_KINDS, SUGGESTED))  # the server's own templates decide
log_sources = _static(LOG_SOURCES)
auth_schemes = _static(AUTH_SCHEMES)
shells = _static(SHELLS)


# -- from the API -------------------------------------------------------------------------------------------------
def fleets(ctx: Any, incomplete: str) -> list[Candidate]:
    """Fleet names (the id as the description)."""
    if _introspecting(ctx):
        return [(DYNAMIC, "fleet")]
    return candidates("fleet", incomplete, _flags_from_context(ctx))


def machines(ctx: Any, incomplete: str) -> list[Candidate]:
    """Machine ids of the fleet in use, with their state and image as the description."""
    if _introspecting(ctx):
        return [(DYNAMIC, "machine")]
    return candidates("machine", incomplete, _flags_from_context(ctx))


def gateways(ctx: Any, incomplete: str) -> list[Candidate]:
    """Gateway names and ids of the fleet in use."""
    if _introspecting(ctx):
        return [(DYNAMIC, "gateway")]
    return candidates("gateway", incomplete, _flags_from_context(ctx))


def namespaces(ctx: Any, incomplete: str) -> list[Candidate]:
    """Namespace names of the server."""
    if _introspecting(ctx):
        return [(DYNAMIC, "namespace")]
    return candidates("namespace", incomplete, _flags_from_context(ctx))


def secrets(ctx: Any, incomplete: str) -> list[Candidate]:
    """Secret names of the namespace in use."""
    if _introspecting(ctx):
        return [(DYNAMIC, "secret")]
    return candidates("secret", incomplete, _flags_from_context(ctx))


def profiles(ctx: Any, incomplete: str) -> list[Candidate]:
    """Profile names from config.toml (no request)."""
    if _introspecting(ctx):
        return [(DYNAMIC, "profile")]
    return candidates("profile", incomplete, {})


def candidates(kind: str, incomplete: str, flags: Flags) -> list[Candidate]:
    """The values of one kind (fleet, machine, gateway, profile) that start with `incomplete`; [] on any failure."""
    try:
        if kind == "profile":
            items = _profiles()
        elif kind in _FETCH:
            items = _cached(flags, kind)
        else:
            items = []
        return [(v, h) for v, h in items if v.startswith(incomplete)]
    except BaseException:  # noqa: BLE001 - a completion never fails out loud, not even on Ctrl-C
        return []


def serve_if_asked() -> None:
    """Answer a completion script's request for values (see the module docstring) and exit; else do nothing."""
    kind = os.environ.get(ENV_KIND)
    if not kind:
        return
    try:
        incomplete, flags = parse_line(os.environ.get(ENV_LINE, ""))
        items = candidates(kind, incomplete, flags)
        from valyent_cli.cli.sanitize import has_control

        # A name from the server with a control character (a newline, an escape) is never offered to the shell.
        from valyent_cli.cli.output import Output

        Output().raw_stdout("".join(f"{v}\t{h}\n" if h else f"{v}\n" for v, h in items if not has_control(v + h)))
    except BaseException:  # noqa: BLE001
        pass
    os._exit(0)  # nothing else of the program must run, nor print at exit


#: groups with commands that have options named as the global ones (`auth login -p`, `profiles set -p`)
_OWN_GLOBALS = frozenset({"auth", "profiles"})


def parse_line(line: str) -> tuple[str, Flags]:
    """The word being completed and the flags that choose the account and fleet, from the line up to the cursor.

    Global flags (--profile/-p, --endpoint, --namespace) count anywhere before `--` (as `main` takes them), except
    after the words of a group whose commands have options of those names (`auth login -p`, `profiles set -p`);
    --fleet anywhere. `--opt=value` is understood; for `--fleet=we` the word being completed is `we`.
    """
    import shlex

    try:
        words = shlex.split(line)
    except ValueError:  # an unclosed quote in the word being typed
        words = line.split()
    incomplete = ""
    if words and not line[-1:].isspace():
        incomplete = words.pop()
        if incomplete.startswith("--") and "=" in incomplete:
            incomplete = incomplete.split("=", 1)[1]
    flags: Flags = {}
    names = {"-p": "profile", "--profile": "profile", "--endpoint": "endpoint", "--namespace": "namespace"}
    group: str | None = None
    i = 1
    while i < len(words):
        word = words[i]
        if word == "--":
            break
        name, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        key = "fleet" if name == "--fleet" else (names.get(name) if group not in _OWN_GLOBALS else None)
        if key:
            if not eq:
                i += 1
                value = words[i] if i < len(words) else ""
            flags[key] = value
        elif not word.startswith("-") and group is None:
            group = word
        i += 1
    return incomplete, flags


def _flags_from_context(ctx: Any) -> Flags:
    """The same flags from a Typer context (Typer's protocol parses the line without running the callbacks)."""
    flags: Flags = {}
    node = ctx
    while node is not None:
        if not flags.get("fleet") and isinstance(node.params.get("fleet"), str):
            flags["fleet"] = node.params["fleet"]
        if node.parent is None:
            flags.update({k: node.params.get(k) for k in ("profile", "endpoint", "namespace")})
        node = node.parent
    return flags


def _profiles() -> list[Candidate]:
    from valyent_cli.config import list_profiles

    active, table = list_profiles()
    return [
        (name, ("active, " if name == active else "") + str(values.get("endpoint") or "default endpoint"))
        for name, values in sorted(table.items())
    ]


def cache_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("valyent")) / "completion.json"


def _cached(flags: Flags, kind: str) -> list[Candidate]:
    from valyent_cli.config import load_settings

    settings = load_settings(
        profile=flags.get("profile") or None, endpoint=flags.get("endpoint") or None,
        namespace=flags.get("namespace") or None, fleet=(flags.get("fleet") or "").strip() or None,
    )
    if not settings.token and (settings.is_valyent_cloud or settings.is_local):
        return []
    fleet = settings.fleet or ""
    if kind in _FLEETLESS:
        fleet = ""
    elif not fleet:
        return []
    # The key holds a digest of the token, never the token: two accounts on one endpoint see different things.
    token_digest = hashlib.sha256((settings.token or "").encode()).hexdigest()[:16]
    raw_key = "\n".join([settings.endpoint, settings.namespace or "", fleet, kind, token_digest])
    key = hashlib.sha256(raw_key.encode()).hexdigest()
    path = cache_path()
    entries = _read_cache(path)
    now = time.time()
    hit = entries.get(key)
    if isinstance(hit, dict) and 0 <= now - float(hit.get("at", 0)) < CACHE_TTL:
        return [(str(v), str(h)) for v, h in hit.get("items", [])]
    items = _FETCH[kind](settings, fleet)
    entries = {k: e for k, e in entries.items() if isinstance(e, dict) and 0 <= now - float(e.get("at", 0)) < CACHE_TTL}
    entries[key] = {"at": now, "items": items}
    _write_cache(path, entries)
    return items


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, entries: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entries, f)
        os.replace(tmp, path)
    except OSError:
        pass


def _client(settings: Any) -> Any:
    return settings.client(timeout=min(settings.timeout, REQUEST_TIMEOUT), max_retries=0)


def _fetch_fleets(settings: Any, _fleet: str) -> list[Candidate]:
    with _client(settings) as client:
        return [(str(f.get("name") or f.get("id")), str(f.get("id") or "")) for f in client.fleets.list()]


def _fetch_machines(settings: Any, fleet: str) -> list[Candidate]:
    with _client(settings) as client:
        items = client.machines.list(fleet)
    return [
        (str(m.get("id")), " ".join(str(x) for x in (m.get("state"), (m.get("config") or {}).get("image")) if x))
        for m in items
        if m.get("id")
    ]


def _fetch_gateways(settings: Any, fleet: str) -> list[Candidate]:
    with _client(settings) as client:
        items = client.gateways.list(fleet)
    out: list[Candidate] = []
    for g in items:
        port = f"port {g.get('target_port')}"
        if g.get("name"):
            out.append((str(g["name"]), f"{g.get('id')}, {port}"))
        if g.get("id"):
            out.append((str(g["id"]), f"{g.get('name') or ''}, {port}".lstrip(", ")))
    return out


def _fetch_namespaces(settings: Any, _fleet: str) -> list[Candidate]:
    with _client(settings) as client:
        return [(str(n.get("name")), "") for n in client.namespaces.list() if n.get("name")]


def _fetch_secrets(settings: Any, _fleet: str) -> list[Candidate]:
    if not settings.namespace:
        return []
    with _client(settings) as client:
        return [(str(s.get("name")), "secret") for s in client.secrets.list(settings.namespace) if s.get("name")]


# From the one list of resources (valyent_cli/groups.py): each that completes has its `_fetch_<group>` above.
_FETCH: dict[str, Callable[[Any, str], list[Candidate]]] = {
    kind: globals()[f"_fetch_{resource['group']}"] for kind, resource in RESOURCES.items() if resource["complete"]
}
_FLEETLESS = frozenset(kind for kind in _FETCH if RESOURCES[kind]["within"] != "fleet")
