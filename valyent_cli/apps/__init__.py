"""Apps: `valyent deploy`, `releases`, `rollback` and `status`, one level above machines, through the public API
only (so the same on Ravel and on the sandbox).

An app is the machines of a fleet labelled ``valyent.app=NAME``, each labelled ``valyent.release=N``; its release
records live in the fleet's annotations (:mod:`releases`). A deploy is a :class:`plan.Plan` (steps computed from
what runs and what is wanted, printable, testable without a server) run by :class:`engine.Engine`. :mod:`spec`
reads the [deploy] table and the flags. Nothing here prints or imports typer: the commands report through the
engine's callback.
"""

#: the label that names a machine's app, and the one that names its release
APP_LABEL = "valyent.app"
RELEASE_LABEL = "valyent.release"
#: the label of a release command's one-shot machine (its value: the release number); it has no APP_LABEL
RELEASE_COMMAND_LABEL = "valyent.release-command"
