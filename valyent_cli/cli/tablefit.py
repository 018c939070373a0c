"""How a table's columns fit a terminal's width (`cli/output.py` renders them): the natural width, and which columns
are cut, and how far, when it is too wide."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

GAP = 2  # rich's padding between two columns
#: columns whose values are never cut: what a user copies (an id, a URL to curl) or matches on (an event's type)
WHOLE_HEADERS = ("id", "machine", "fleet", "gateway", "url", "endpoint", "type")
MIN_CUT = 10  # a cut cell keeps at least this many characters


def natural_width(columns: Sequence[Any], cells: list[list[str]]) -> int:
    widths = [max([len(c.header), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    return sum(widths) + GAP * (len(widths) - 1)


def fit(columns: Sequence[Any], cells: list[list[str]], available: int) -> list[int]:
    """Column widths that fit ``available``: ids, URLs and types (and the first column) are never cut; the widest
    other column is cut first (a `wrap` column: made narrower, its text goes on over more lines), down to
    ``MIN_CUT`` characters; if even that is too wide, the natural widths of the rest are kept."""
    headers = [c.header for c in columns]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    cuttable = [i for i, h in enumerate(headers) if i > 0 and h.lower() not in WHOLE_HEADERS]
    excess = sum(widths) + GAP * (len(widths) - 1) - available
    while excess > 0:
        candidates = [i for i in cuttable if widths[i] > max(MIN_CUT, len(headers[i]))]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        others = [widths[i] for i in candidates if i != widest]
        floor = max(MIN_CUT, len(headers[widest]), max(others, default=0))
        cut = min(excess, widths[widest] - floor) or 1
        widths[widest] -= cut
        excess -= cut
    return widths
