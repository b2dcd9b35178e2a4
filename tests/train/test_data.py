"""The manifest ↔ features checks train makes before fitting anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.common.contracts import SilverManifest
from stages.common.errors import InputError
from stages.common.silver_parts import SilverPart, SilverSet
from stages.train import data


def _read_all(path: Path, where: str, manifest: SilverManifest) -> tuple[np.ndarray, np.ndarray | None]:
    """Every train row of one features file (no sample)."""
    sample = data.read_train_sample(SilverSet(manifest, [SilverPart("", path, where, manifest)]), 10**9, seed=0)
    return sample.X, sample.labels


def _manifest(paths: dict[str, Path]) -> dict[str, Any]:
    return json.loads(paths["manifest"].read_text())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("schema_hash"), r"manifest lacks \['schema_hash'\]"),
        (lambda m: m["features"].reverse(), "schema_hash does not match its features/dtypes"),
        (lambda m: m["dtypes"].update({m["features"][0]: "float64"}), "schema_hash does not match"),
        (lambda m: m.update(features=[]), "lists no features"),
    ],
)
def test_manifest_checks(silver: dict[str, Path], tmp_path: Path, edit: Any, message: str) -> None:
    manifest = _manifest(silver)
    edit(manifest)
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=message):
        data.read_manifest(tmp_path / "m.json", "s3://b/silver/r/manifest.json")


def test_manifest_not_json(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text("features: [a]\n")
    with pytest.raises(InputError, match="m.json: not a readable JSON manifest"):
        data.read_manifest(tmp_path / "m.json", "m.json")


def test_train_rows_in_time_order_with_labels(silver: dict[str, Path]) -> None:
    manifest = data.read_manifest(silver["manifest"], "m")
    X, labels = _read_all(silver["features"], "f", manifest)
    table = pq.read_table(silver["features"], filters=[("split", "==", "train")])
    assert X.shape == (manifest.train_rows, len(manifest.features)) and X.dtype == np.float32
    assert labels is not None and labels.tolist() == table.column("label").to_pylist()
    np.testing.assert_array_equal(X[:, 0], table.column(manifest.features[0]).to_numpy())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop_columns(["log_src_bytes"]), "log_src_bytes missing"),
        (
            lambda t: t.set_column(
                t.column_names.index("log_src_bytes"), "log_src_bytes", t.column("log_src_bytes").cast(pa.float64())
            ),
            "log_src_bytes is double",
        ),
        (
            lambda t: t.append_column("surprise", pa.array(np.zeros(t.num_rows, np.float32))),
            "surprise is not in the manifest",
        ),
    ],
)
def test_features_that_do_not_match_the_manifest(
    silver: dict[str, Path], tmp_path: Path, change: Any, message: str
) -> None:
    pq.write_table(change(pq.read_table(silver["features"])), tmp_path / "f.parquet")
    manifest = data.read_manifest(silver["manifest"], "m")
    with pytest.raises(InputError, match=f"f.parquet: does not match the manifest .*{message}"):
        _read_all(tmp_path / "f.parquet", str(tmp_path / "f.parquet"), manifest)


@pytest.mark.parametrize("rows", [-5, "12", [1], None, True, 1.5])
def test_manifest_train_rows_must_be_a_count(rows: Any, silver: dict[str, Path], tmp_path: Path) -> None:
    """A negative, textual or list train_rows crashed np.empty / int() with exit 1."""
    manifest = _manifest(silver)
    manifest["split"]["train_rows"] = rows
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="split.train_rows must be a row count"):
        data.read_manifest(tmp_path / "m.json", "m.json")


def test_corrupt_or_ambiguous_features_are_input_errors(silver: dict[str, Path], tmp_path: Path) -> None:
    from tests.hostile_files import corrupt_pages, duplicate_column

    manifest = data.read_manifest(silver["manifest"], "m")
    table = pq.read_table(silver["features"])
    with pytest.raises(InputError, match="f.parquet: corrupt Parquet data"):
        _read_all(corrupt_pages(table, tmp_path / "f.parquet"), "f.parquet", manifest)
    name = manifest.features[0]
    with pytest.raises(InputError, match=rf"d.parquet: column\(s\) \['{name}'\] appear more than once"):
        _read_all(duplicate_column(table, name, tmp_path / "d.parquet"), "d.parquet", manifest)
