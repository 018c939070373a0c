"""httpx, imported without what a synchronous client never uses.

``import httpx`` runs ``from ._main import main``, which loads click, rich and pygments when they are installed:
about 40 % of httpx's import time, for a tool we never call. And httpcore (imported by httpx only when a client is
built, so it is imported here, under the same marks) imports trio, when it is installed, for its async backend
(about 50 ms). Marking those modules as absent for the duration of the import makes httpx define
its stub and httpcore do without trio; the marks are removed at once, so both stay importable afterwards.
"""

import sys

_SKIPPED = [name for name in ("httpx._main", "trio") if name not in sys.modules]

if "httpx" not in sys.modules:
    for _name in _SKIPPED:
        sys.modules[_name] = None  # type: ignore[assignment]
    try:
        import httpcore  # noqa: F401 - httpx imports it lazily, when its first client is built
        import httpx
    finally:
        for _name in _SKIPPED:
            del sys.modules[_name]
else:  # pragma: no cover - someone imported httpx first
    import httpx

__all__ = ["httpx"]
