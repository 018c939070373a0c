"""Identifiers: ULID-like strings (48-bit millisecond time, 80 random bits, Crockford base32, lowercase).

Machine ids are bare ULIDs so that they sort by creation time and users can type a short unique prefix.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def ulid() -> str:
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def machine_id() -> str:
    return ulid()


def fleet_id() -> str:
    return "fleet_" + ulid()


def gateway_id() -> str:
    return "gw_" + ulid()
