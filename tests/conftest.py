"""The suite's fixtures live in tests/support/ (a package: the CLI runner, the environment builder, the sandbox
server, the fault server, the Ravel stand-in, the container images); this registers those that define fixtures.
Where tests go and how to run them: docs/internals.md, "Tests"."""

pytest_plugins = ("support.sandbox", "support.engine", "support.faultserver", "support.groups")
