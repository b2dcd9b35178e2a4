"""Silver outputs for the train tests, built once per session with the real silver code."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.common.schema import FLOW_SCHEMA
from tests.common.silver_parts_builders import build_single as build_silver


@pytest.fixture(scope="session")
def flows() -> pa.Table:
    """30k labelled synthetic flows over two days, 5% attacks; the validation part of the
    train split (its last 20% by time) holds five attack scenarios."""
    from stages.ingest.synthetic import generate

    return generate(30_000, seed=5, attack_share=0.05, days=2.0)


@pytest.fixture(scope="session")
def silver(flows: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_silver(flows, tmp_path_factory.mktemp("silver-labelled"))


@pytest.fixture(scope="session")
def silver_unlabelled(flows: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    table = flows
    for name in ("label", "attack_type"):
        field = FLOW_SCHEMA.field(name)
        table = table.set_column(table.column_names.index(name), field, pa.nulls(table.num_rows, field.type))
    return build_silver(table, tmp_path_factory.mktemp("silver-unlabelled"))


def train_rows(paths: dict[str, Path]) -> pa.Table:
    """The train split of a silver output, in file (time) order."""
    return pq.read_table(paths["features"], filters=[("split", "==", "train")])


@pytest.fixture(scope="session")
def flows_attack_majority() -> pa.Table:
    """24k flows over two days, 85% attacks, and no benign flow in the middle of the period
    (positions 45-75% by time): the latest train rows (the validation slice) are all attacks,
    as in attack-heavy public captures, while the holdout still has benign flows to measure."""
    import numpy as np
    import pyarrow.compute as pc

    from stages.ingest.synthetic import generate

    table = generate(24_000, seed=5, attack_share=0.85, days=2.0)
    table = table.take(pa.array(np.argsort(table.column("ts").cast(pa.int64()).to_numpy(), kind="stable")))
    position = np.arange(table.num_rows) / table.num_rows
    benign = pc.fill_null(pc.equal(table.column("label"), 0), False).to_numpy(zero_copy_only=False)
    return table.filter(pa.array(~(benign & (position >= 0.45) & (position < 0.75))))


@pytest.fixture(scope="session")
def silver_attack_majority(
    flows_attack_majority: pa.Table, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    return build_silver(flows_attack_majority, tmp_path_factory.mktemp("silver-attack-majority"))
