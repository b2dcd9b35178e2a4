"""The shared reader of silver outputs: one features file, or a directory of ``part=<k>`` folders."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.common.contracts import SilverManifest, schema_hash
from stages.common.errors import InputError
from stages.common.silver_parts import open_silver
from tests.common.silver_parts_builders import build_single, cut_into_parts, write_part


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from stages.ingest.synthetic import generate

    return build_single(generate(3_000, seed=11, attack_share=0.05, days=0.5), tmp_path_factory.mktemp("single"))


@pytest.fixture(scope="module")
def first_holdout_row(single: dict[str, Path]) -> int:
    return SilverManifest.read(single["manifest"], "m").train_rows


@pytest.fixture
def parts(single: dict[str, Path], first_holdout_row: int, tmp_path: Path) -> Path:
    """Three parts: two train, one holdout (cut at the first holdout row)."""
    return cut_into_parts(single, tmp_path / "silver", [first_holdout_row // 2, first_holdout_row])


def _open(folder: Path):
    return open_silver(folder, folder, str(folder), str(folder))


def test_a_single_file_is_one_part_with_its_own_manifest(single: dict[str, Path]) -> None:
    opened = open_silver(single["features"], single["manifest"], "s3://b/f.parquet", "s3://b/m.json")
    own = SilverManifest.read(single["manifest"], "m")
    assert opened.manifest == own
    assert [(p.key, p.features, p.features_uri) for p in opened.parts] == [("", single["features"], "s3://b/f.parquet")]
    assert opened.train_parts() == opened.holdout_parts() == opened.parts


def test_a_directory_combines_its_parts_in_order(single: dict[str, Path], parts: Path) -> None:
    own = SilverManifest.read(single["manifest"], "m")
    opened = _open(parts)
    assert [p.key for p in opened.parts] == ["00000", "00001", "00002"]
    assert [p.key for p in opened.train_parts()] == ["00000", "00001"]
    assert [p.key for p in opened.holdout_parts()] == ["00002"]
    assert opened.parts[1].features_uri == f"{parts}/part=00001/features.parquet"
    m = opened.manifest
    assert isinstance(m, SilverManifest)
    assert (m.features, m.dtypes, m.schema_hash, m.passthrough) == (
        own.features,
        own.dtypes,
        own.schema_hash,
        own.passthrough,
    )
    assert (m.rows, m.train_rows, m.split["holdout_rows"], m.has_labels) == (
        own.rows,
        own.train_rows,
        own.split["holdout_rows"],
        True,
    )
    assert m.split["method"] == "partition"
    assert m.split["cutoff_ts"] == own.split["cutoff_ts"]  # the first holdout row's time
    assert (m.split["parts"], m.split["train_parts"], m.split["holdout_parts"]) == (3, 2, 1)


def test_parts_are_ordered_by_number_not_by_text(
    single: dict[str, Path], first_holdout_row: int, tmp_path: Path
) -> None:
    table = pq.read_table(single["features"])
    like = SilverManifest.read(single["manifest"], "m")
    for key, (a, b) in {
        "9": (0, 100),
        "10": (100, first_holdout_row),
        "11": (first_holdout_row, table.num_rows),
    }.items():
        write_part(table.slice(a, b - a), like, tmp_path / f"part={key}")
    assert [p.key for p in _open(tmp_path).parts] == ["9", "10", "11"]


def test_has_labels_when_any_part_has_them(single: dict[str, Path], parts: Path) -> None:
    path = parts / "part=00000" / "features.parquet"
    table = pq.read_table(path)
    unlabelled = table.set_column(
        table.column_names.index("label"), "label", pa.nulls(table.num_rows, table.schema.field("label").type)
    )
    write_part(unlabelled, SilverManifest.read(single["manifest"], "m"), parts / "part=00000")
    opened = _open(parts)
    assert not opened.parts[0].manifest.has_labels
    assert opened.manifest.has_labels


def test_an_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no part=<k> folders in this directory"):
        _open(tmp_path)


@pytest.mark.parametrize("missing", ["features.parquet", "manifest.json"])
def test_a_part_without_its_file_is_named(parts: Path, missing: str) -> None:
    (parts / "part=00001" / missing).unlink()
    with pytest.raises(InputError, match=rf"part=00001/{missing}: part 00001 has no {missing}; re-run silver"):
        _open(parts)


def test_a_directory_and_a_file_are_refused(single: dict[str, Path], parts: Path) -> None:
    with pytest.raises(InputError, match=r"is a directory of parts but .* is not"):
        open_silver(parts, single["manifest"], "dir", "file.json")


def test_parts_with_other_features_name_both_parts(parts: Path) -> None:
    path = parts / "part=00001" / "manifest.json"
    doc = json.loads(path.read_text())
    dropped = doc["features"].pop()
    doc["dtypes"].pop(dropped)
    doc["schema_hash"] = schema_hash(doc["features"], doc["dtypes"])
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError) as err:
        _open(parts)
    message = str(err.value)
    assert "part=00000/features.parquet and" in message and "part=00001/features.parquet" in message
    assert f"features only in part 00000: ['{dropped}'], only in part 00001: []" in message


def test_a_corrupt_part_manifest_is_named(parts: Path) -> None:
    (parts / "part=00002" / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match=r"part=00002/manifest.json: not a readable JSON manifest"):
        _open(parts)


def _on_side(rows: pa.Table, side: str) -> pa.Table:
    index = rows.column_names.index("split")
    return rows.set_column(index, "split", pa.array([side] * rows.num_rows, rows.schema.field("split").type))


def _drop_cutoffs(folder: Path) -> None:
    """Manifests without split.cutoff_ts: the reader falls back to the ts row-group statistics."""
    for path in folder.glob("part=*/manifest.json"):
        doc = json.loads(path.read_text())
        doc["split"].pop("cutoff_ts")
        path.write_text(json.dumps(doc))


BOUNDS = pytest.mark.parametrize("with_cutoff", [True, False], ids=["cutoff_ts", "row-group statistics"])


@BOUNDS
def test_a_holdout_part_before_a_train_part_is_refused(
    single: dict[str, Path], first_holdout_row: int, tmp_path: Path, with_cutoff: bool
) -> None:
    table = pq.read_table(single["features"])
    like = SilverManifest.read(single["manifest"], "m")
    middle = first_holdout_row // 2
    write_part(_on_side(table.slice(0, middle), "train"), like, tmp_path / "part=0")
    write_part(_on_side(table.slice(middle, first_holdout_row - middle), "holdout"), like, tmp_path / "part=1")
    write_part(_on_side(table.slice(first_holdout_row), "train"), like, tmp_path / "part=2")
    if not with_cutoff:
        _drop_cutoffs(tmp_path)
    with pytest.raises(
        InputError, match=r"part=1/features.parquet: holdout part 1 begins at .*, before train part 2 begins"
    ):
        _open(tmp_path)


@BOUNDS
@pytest.mark.parametrize(
    ("back_s", "warned"), [(-0.000001, False), (0, True), (600, True)], ids=["after", "same", "10m"]
)
def test_a_holdout_overlapping_the_last_train_part_is_a_warning(
    single: dict[str, Path],
    first_holdout_row: int,
    tmp_path: Path,
    with_cutoff: bool,
    back_s: float,
    warned: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Hourly exports overlap (a flow is written when it ends, stamped with its start): a holdout whose
    first flow lies inside the last train part is evaluated with a warning naming the overlap."""
    table = pq.read_table(single["features"])
    like = SilverManifest.read(single["manifest"], "m")
    train = table.slice(0, first_holdout_row)
    holdout = table.slice(first_holdout_row)
    last_us = train.column("ts").cast(pa.int64())[-1].as_py()
    ts_us = holdout.column("ts").cast(pa.int64()).to_numpy().copy()
    ts_us[0] = last_us - int(back_s * 1e6)  # the holdout's first flow, moved back into the train part
    holdout = holdout.set_column(holdout.column_names.index("ts"), "ts", pa.array(ts_us).cast(holdout["ts"].type))
    write_part(train, like, tmp_path / "part=0")
    write_part(holdout, like, tmp_path / "part=1")
    if not with_cutoff:
        _drop_cutoffs(tmp_path)
    with caplog.at_level("WARNING", logger="stages.common.silver_parts"):
        assert [p.key for p in _open(tmp_path).holdout_parts()] == ["1"]
    assert ("before train part 0 ends" in caplog.text) == warned, caplog.text
