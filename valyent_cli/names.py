"""Names as Ravel accepts them: one rule for the sandbox's routes and the CLI's settings."""

from __future__ import annotations

import re
from typing import Any


def object_name_error(name: Any) -> str | None:
    """Ravel's object-name rule (`validateObjectName`, ravel/validation.go: namespaces, fleets, gateways), with its
    messages; None when the name is valid. A namespace names directories and engine objects of the sandbox: this is
    the one rule every route applies to it (`local/routes/common.py`), and the one the CLI applies to the namespace
    it is given (`config/values.py`: a name Ravel would never have created is refused before any request)."""
    if not isinstance(name, str) or name == "":
        return "name cannot be empty"
    if len(name) > 63:
        return "name cannot be longer than 63 characters"
    if not re.fullmatch(r"[A-Za-z0-9-]+", name):
        return "name can only contain alphanumeric characters and dashes"
    if name[0] == "-" or name[-1] == "-":
        return "name cannot start or end with a dash"
    return None
