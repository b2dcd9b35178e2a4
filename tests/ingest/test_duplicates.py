"""``duplicates`` counts repeated source records, not rows that merely agree on the mapped columns.

UNSW-NB15 has 49 columns of which the preset maps 13: two flows equal in those 13 but not
in, say, ``sttl`` were counted as duplicates, so the count exceeded the truly repeated rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from stages.ingest.writer import CANONICAL, RECORDS

from .conftest import FIXTURES, Ingested

Ingest = Callable[..., Ingested]


def _unsw(tmp_path: Path, extra: list[str]) -> Path:
    first = (FIXTURES / "UNSW-NB15_1.csv").read_text().splitlines()[0]
    fields = first.split(",")
    assert fields[9] == "31"  # sttl: not mapped to any canonical column
    other_ttl = ",".join([*fields[:9], "62", *fields[10:]])
    path = tmp_path / "unsw.csv"
    path.write_text("\n".join([first, first, other_ttl, *extra]) + "\n")
    return path


@pytest.mark.parametrize("extra", [[], ["1,2,3"]], ids=["fast-path", "careful-path"])
def test_unsw_rows_equal_only_in_mapped_columns_are_not_duplicates(
    ingest: Ingest, tmp_path: Path, extra: list[str]
) -> None:
    got = ingest(_unsw(tmp_path, extra))
    assert got.flows.num_rows == 3 and got.rejects.num_rows == len(extra)
    assert got.stats.duplicates == 1  # the repeated line; the other-TTL row is a different record
    assert got.stats.duplicates_compared == {RECORDS}
    assert got.stats.metrics()["duplicates_compared"] == "whole source records"


def test_crlf_and_quoted_records_compare_whole_records(ingest: Ingest, tmp_path: Path) -> None:
    lines = (FIXTURES / "cicids2017-corrected.csv").read_text().splitlines()
    quoted = lines[1].replace("BENIGN", '"BENIGN"')
    path = tmp_path / "crlf.csv"
    path.write_bytes("\r\n".join([*lines, lines[1], quoted]).encode() + b"\r\n")
    got = ingest(path)
    assert got.flows.num_rows == 8 and got.stats.duplicates == 1  # quoting makes another record


def test_zeek_compares_canonical_columns_and_says_so(ingest: Ingest) -> None:
    got = ingest(FIXTURES / "conn.log")
    assert got.stats.duplicates_compared == {CANONICAL} and got.stats.duplicates == 0
