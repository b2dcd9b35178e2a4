"""Shared helpers for the ingest tests: run the reader → writer pipeline on a file in-process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.ingest.readers import read_source
from stages.ingest.writer import Stats, write_chunks

FIXTURES = Path(__file__).parent / "fixtures"
BADINPUT = Path(__file__).parent / "badinput"


@dataclass
class Ingested:
    flows: pa.Table
    rejects: pa.Table
    stats: Stats


@pytest.fixture
def ingest(tmp_path: Path) -> Callable[..., Ingested]:
    """``ingest(path, fmt=..., preset=..., mapping=...)`` → flows, rejects and counts, as the CLI writes them."""

    def run(path: Path, **kwargs: Any) -> Ingested:
        out, rej = tmp_path / "flows.parquet", tmp_path / "rejects.parquet"
        stats = write_chunks(read_source(Path(path), str(path), **kwargs), out, rej)
        flows, rejects = pq.read_table(out), pq.read_table(rej)
        assert stats.rows_in == flows.num_rows + rejects.num_rows == stats.rows_out + stats.rejected
        return Ingested(flows, rejects, stats)

    return run
