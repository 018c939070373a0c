"""Identifiers: ULID-like strings (48-bit millisecond time, 80 random bits, Crockford base32, lowercase).

Machine ids are bare ULIDs so that they sort by creation time and users can type a short unique prefix.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


_last = [0, 0]  # (ms, random part) of the previous id: ids made in one millisecond still sort in order


def ulid() -> str:
    ms = time.time_ns() // 1_000_000
    if ms <= _last[0]:
        ms, rnd = _last[0], _last[1] + 1
        if rnd >> 80:
            ms, rnd = ms + 1, secrets.randbits(79)
    else:
        rnd = secrets.randbits(80)
    _last[0], _last[1] = ms, rnd
    value = ms << 80 | rnd
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
