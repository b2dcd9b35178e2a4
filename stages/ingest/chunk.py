"""What every reader yields (``Chunk``) and how a rejected row finds its line (``SourceLines``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .normalise import raw_text

__all__ = ["Chunk", "Misaligned", "SourceLines"]


@dataclass
class Chunk:
    """One block's outcome: flows in FLOW_SCHEMA, rejects in REJECT_SCHEMA, records read."""

    flows: pa.Table
    rejects: pa.Table
    rows_in: int
    unknown_labels: dict[str, int] = field(default_factory=dict)
    # the whole source record of each flow row (binary), where the reader has it: duplicates
    # are then counted over source records, not over the canonical columns a mapping kept
    records: pa.Array | None = None


class Misaligned(Exception):
    """The numbered lines and the parsed table disagree on how many rows a block has."""


Lines = Sequence[tuple[int, bytes]]


class SourceLines:
    """The ``raw`` lookup ``normalise.split`` calls with the indices of rejected rows.

    Row ``i`` of the parsed table is ``lines[i]``: (line number, original bytes), returned as
    line numbers and text (the first RAW_LIMIT bytes). ``lines`` may be a function that makes
    the list, so a block with no rejected row never splits itself into lines. With ``rows``
    given, a list of another length raises ``Misaligned``.
    """

    def __init__(self, lines: Lines | Callable[[], Lines], rows: int | None = None) -> None:
        self._lines = lines
        self._rows = rows

    def __call__(self, idx: Any) -> tuple[list[int | None], list[str]]:
        if callable(self._lines):
            self._lines = self._lines()
        lines = self._lines
        if self._rows is not None and len(lines) != self._rows:
            raise Misaligned
        picked = [lines[int(i)] for i in idx]
        return [no for no, _ in picked], [raw_text(raw) for _, raw in picked]
