"""httpx, imported without its own command-line module.

``import httpx`` runs ``from ._main import main``, which loads click, rich and pygments when they are installed:
about 40 % of httpx's import time, for a tool we never call. Marking the module as absent for the duration of the
import makes httpx define its stub instead; the mark is removed at once, so ``httpx._main`` stays importable.
"""

import sys

if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx
    finally:
        del sys.modules["httpx._main"]
else:  # pragma: no cover - someone imported httpx first
    import httpx

__all__ = ["httpx"]
