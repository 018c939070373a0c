"""Which tests share a pytest-xdist worker (`-n 4 --dist loadgroup`, the default of pyproject.toml's addopts).

Most tests wait on subprocesses and servers of their own (free ports, private config and data dirs), so they run
four at a time. Two kinds are kept together on one worker, one after the other:

- ``podman`` and ``docker``: every test using a container engine (the ``engine`` fixture, directly or through
  ``engine_images``/``engine_sandbox``/``engine_env``), by the engine it runs on: one set of test images and one
  sandbox per engine for the run, as in a serial run; the two engines' tests run side by side; the tests about
  podman itself (the ``podman`` fixture: ``podman_images``, ``podman_sandbox``, ``podman_env``) join podman's;
- ``heavy``: tests that load the machine on purpose (hundreds of concurrent requests, dozens of processes at once,
  parallel `local start`): run side by side they would measure each other, not the CLI.

A test gets its group from its fixtures or from ``HEAVY`` below, or from its own ``@pytest.mark.xdist_group``.
With ``-n 0`` (one process, in order) the marks do nothing.
"""

from __future__ import annotations

import pytest


# module path (from tests/) -> test names (a prefix of the node name), or None for every test of the module
HEAVY = {
    "sandbox/test_sandbox_stress.py": None,
    "sandbox/test_local_start.py": ("test_parallel_local_starts", "test_parallel_commands"),
    "cli/test_profiles.py": ("test_fifty_concurrent_creates",),
    "cli/test_network_errors.py": None,
}


def group_of(item: pytest.Item) -> str | None:
    if "podman" in getattr(item, "fixturenames", ()):  # the podman-only fixtures (podman_images, podman_sandbox)
        return "podman"
    if "engine" in getattr(item, "fixturenames", ()):
        callspec = getattr(item, "callspec", None)
        return str(callspec.params["engine"]) if callspec and "engine" in callspec.params else "engine"
    path = item.path.as_posix().split("/tests/", 1)[-1]
    if path in HEAVY:
        names = HEAVY[path]
        if names is None or item.name.startswith(names):
            return "heavy"
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            group = group_of(item)
            if group:
                item.add_marker(pytest.mark.xdist_group(group))
