"""``ApiObject``, the base of every object the API returns (``Fleet``, ``Machine``...), in a module of its own.

``api/types.py`` re-exports it; the resource modules import it from here, so that a command that lists fleets
does not build the payload TypedDicts and enums of ``types`` (about 1.5 ms of start-up) that it never uses.
"""

from __future__ import annotations

from typing import Any


class ApiObject(dict):  # type: ignore[type-arg]
    """An API object: the JSON the server sent, every key kept, with attribute access to its keys.

    ``json.dumps(obj)`` gives back exactly what the API returned, so ``--json`` output is stable.
    """

    __slots__ = ("_client",)

    def __init__(self, data: dict[str, Any] | None = None, client: Any = None) -> None:
        super().__init__(data or {})
        self._client = client

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.get(name)

    def __repr__(self) -> str:
        ident = self.get("id")
        return f"{type(self).__name__}({ident!r})"
