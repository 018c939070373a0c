"""The measure "no module over 600 lines outside devtools/": a module that grows past it holds more than one
responsibility and is split by them (as local/server.py into local/routes/, local/store.py into a package)."""

from __future__ import annotations

from pathlib import Path

import valyent_cli

LIMIT = 600
PACKAGE = Path(valyent_cli.__file__).resolve().parent


def too_long(limit: int = LIMIT) -> dict[str, int]:
    """Modules of valyent_cli/ (devtools/ aside) over ``limit`` lines: path -> lines."""
    sizes = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "devtools":
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            sizes[str(relative)] = lines
    return sizes


def test_no_module_over_600_lines_outside_devtools():
    assert too_long() == {}


def test_the_measure_sees_the_package():
    """It reads every module: with a limit of 100 lines, the biggest ones are over it (and devtools/ never is)."""
    over = too_long(100)
    assert "main.py" in over and "local/server.py" in over
    assert not any(name.startswith("devtools") for name in over)
