"""The one list of the command groups, and of the API resources they name: the root command (main.py), the
not-found hints (cli/errors.py), completion's fetchers (cli/complete.py) and the tests all read it from here.

No imports, plain tuples and dicts: main.py and cli/complete.py import it on every run.
"""

#: every command group, in the order `valyent --help` lists them; valyent_cli/commands/<name>.py defines each
#: one's typer `app` (named <name>)
GROUPS: tuple[str, ...] = (
    "deploy", "releases", "rollback", "status", "fleets", "machines", "gateways", "builds", "fs", "logs",
    "namespaces", "secrets", "nodes", "auth", "profiles", "local", "completion",
)

#: other words for commands, as docker and gh users type them: group -> {alias: the words it stands for}. They
#: work as the command itself (`machines rm ID`), and stay out of help's command lists and completion.
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "fleets": {"ls": ("fleets", "list"), "rm": ("fleets", "delete")},
    "machines": {"ls": ("machines", "list"), "rm": ("machines", "delete"), "logs": ("logs",)},
    "gateways": {"ls": ("gateways", "list"), "rm": ("gateways", "delete")},
    "builds": {"ls": ("builds", "list")},
}

#: the API resources a user names by name or id, by the word the API's not-found messages use for them, in the
#: order a not-found message is matched against them. For each:
#:   list: the command that lists them (after `valyent`), offered when one is not found;
#:   within: what they are listed within ("fleet": one fleet's, "namespace": one namespace's, None: all at once);
#:   complete: whether their values complete from the API (cli/complete.py has a `_fetch_<group>` for each).
RESOURCES: dict[str, dict] = {
    "namespace": {"group": "namespaces", "list": "namespaces list", "within": None, "complete": True},
    "secret": {"group": "secrets", "list": "secrets list", "within": "namespace", "complete": True},
    "node": {"group": "nodes", "list": "nodes list", "within": None, "complete": False},
    "fleet": {"group": "fleets", "list": "fleets list", "within": None, "complete": True},
    "gateway": {"group": "gateways", "list": "gateways list", "within": "fleet", "complete": True},
    "machine": {"group": "machines", "list": "machines list --all", "within": "fleet", "complete": True},
}
