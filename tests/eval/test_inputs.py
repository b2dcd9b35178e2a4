"""The input contract checks, metrics.json serialisation and the metrics document on real files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.common.contracts import ModelCard, SilverManifest
from stages.common.errors import InputError
from stages.common.jsondoc import read_object as load_json
from stages.common.jsondoc import to_json
from stages.eval.evaluate import build_metrics, score
from stages.eval.inputs import check_contract, load_features
from tests.eval import builders as b


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return b.flows(n=600, seed=3)


def _contract(table: pa.Table) -> tuple[dict[str, Any], dict[str, Any]]:
    manifest = b.manifest_for(table)
    return manifest, b.card_for(manifest, 0.5)


def _check(manifest: dict[str, Any], card: dict[str, Any]) -> None:
    """Read both documents as eval does, then check them against each other."""
    check_contract(
        SilverManifest.from_dict(manifest, "m.json"), ModelCard.from_dict(card, "c.json"), "m.json", "c.json"
    )


def test_contract_ok(table: pa.Table) -> None:
    _check(*_contract(table))


def test_card_from_other_features_names_both_hashes(table: pa.Table) -> None:
    manifest, card = _contract(table)
    other = b.manifest_for(table, features=b.FEATURES[:3])
    card.update(features=other["features"], schema_hash=other["schema_hash"])
    with pytest.raises(
        InputError,
        match=f"manifest m.json has schema_hash {manifest['schema_hash']} but model card "
        f"c.json has schema_hash {other['schema_hash']}",
    ):
        _check(manifest, card)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m, c: m.update(features=list(reversed(m["features"]))), "does not match its own features"),
        (lambda m, c: c.update(features=list(reversed(c["features"]))), "features differ from m.json"),
        (lambda m, c: c.update(threshold="high"), "'threshold' must be a finite number"),
        (lambda m, c: c.update(threshold=float("nan")), "'threshold' must be a finite number"),
        (lambda m, c: c.update(threshold=10**400), "'threshold' must be a finite number"),
        (lambda m, c: c.update(mlflow=["run"]), "field 'mlflow' must be a JSON object, found list"),
        (lambda m, c: c.update(calibration="benign_fpr"), "field 'calibration' must be a JSON object"),
        (lambda m, c: c.pop("score_method"), r"c.json: missing field\(s\) \['score_method'\]"),
        (lambda m, c: m.pop("schema_hash"), r"m.json: missing field\(s\) \['schema_hash'\]"),
    ],
    ids=[
        "manifest-edited",
        "card-feature-order",
        "threshold-text",
        "threshold-nan",
        "threshold-400-digits",
        "mlflow-list",
        "calibration-text",
        "card-field",
        "manifest-field",
    ],
)
def test_contract_violations(table: pa.Table, edit: Any, match: str) -> None:
    manifest, card = _contract(table)
    edit(manifest, card)
    with pytest.raises(InputError, match=match):
        _check(manifest, card)


@pytest.mark.parametrize(
    ("content", "match"), [("{not json", "not a readable JSON file"), ("[1, 2]", "expected a JSON object")]
)
def test_load_json_errors(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(InputError, match=f"s3://b/x.json: {match}"):
        load_json(path, "s3://b/x.json")


def _write(tmp_path: Path, table: pa.Table) -> Path:
    path = tmp_path / "features.parquet"
    pq.write_table(table, path)
    return path


def test_load_features_splits_rows(tmp_path: Path, table: pa.Table) -> None:
    data = load_features(_write(tmp_path, table), b.manifest_for(table)["features"], "f.parquet")
    split = np.array(table.column("split").to_pylist())
    assert data.holdout_X.shape == (int((split == "holdout").sum()), 4) and data.holdout_X.dtype == np.float32
    assert data.train_X.shape[0] == int((split == "train").sum())
    assert data.has_labels and data.ts is not None and data.holdout.num_rows == data.holdout_X.shape[0]
    np.testing.assert_array_equal(data.holdout_X[:, 0], table.column(b.FEATURES[0]).to_numpy()[split == "holdout"])


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda t: t.drop_columns(["distinct_ports_5m"]), r"column\(s\) \['distinct_ports_5m'\] missing"),
        (
            lambda t: t.set_column(t.schema.get_field_index("split"), "split", pa.array(["train"] * t.num_rows)),
            "no holdout rows",
        ),
        (
            lambda t: t.set_column(t.schema.get_field_index("split"), "split", pa.array(["test"] * t.num_rows)),
            r"'split' has values \['test'\]",
        ),
        (
            lambda t: t.set_column(t.schema.get_field_index("label"), "label", pa.array([2] * t.num_rows, pa.int8())),
            r"'label' has values \[2.0\]",
        ),
        (
            lambda t: t.set_column(t.schema.get_field_index("duration_s"), "duration_s", pa.array(["x"] * t.num_rows)),
            "'duration_s' has type string",
        ),
    ],
    ids=["missing-feature", "no-holdout", "bad-split", "bad-label", "text-feature"],
)
def test_load_features_errors(tmp_path: Path, table: pa.Table, mutate: Any, match: str) -> None:
    with pytest.raises(InputError, match=match):
        load_features(_write(tmp_path, mutate(table)), b.manifest_for(table)["features"], "f.parquet")


def test_not_parquet(tmp_path: Path, table: pa.Table) -> None:
    path = tmp_path / "features.parquet"
    path.write_bytes(b"PAR1 but not really")
    with pytest.raises(InputError, match="f.parquet: not a readable Parquet file"):
        load_features(path, b.manifest_for(table)["features"], "f.parquet")


def test_to_json_is_deterministic_and_strict() -> None:
    text = to_json({"b": float("nan"), "a": np.float32(0.5), "c": [np.int64(3), float("inf")]})
    assert text == '{\n  "a": 0.5,\n  "b": null,\n  "c": [\n    3,\n    null\n  ]\n}\n'


@pytest.mark.parametrize("labels", ["all", "partial", "none"])
def test_metrics_document(tmp_path: Path, labels: str) -> None:
    table = b.flows(n=1500, seed=5, labels=labels)
    data = load_features(_write(tmp_path, table), b.manifest_for(table)["features"], "f.parquet")
    model = b.fit(b.flows(n=1500, seed=5))
    scores = score(model, data, b.card_for(b.manifest_for(table), 0.0)["score_method"], "model.skops")
    threshold = float(np.quantile(scores, 0.9))
    doc, by_attack = build_metrics("r1", data, scores, threshold)
    json.loads(to_json(doc))  # serialisable, strict JSON
    assert doc["rows"] == data.holdout_X.shape[0] and doc["alerts"] == int((scores >= threshold).sum())
    assert doc["alert_rate"] == pytest.approx(doc["alerts"] / doc["rows"]) and doc["alerts_per_day"] > 0
    assert set(doc["drift"]["psi"]) == set(b.FEATURES) and doc["score_quantiles"]["p50"] <= threshold
    if labels == "none":
        assert not doc["has_labels"] and doc["recall_by_attack"] == {}
        assert all(doc[k] is None for k in ("precision", "recall", "f1", "fpr", "pr_auc", "roc_auc"))
    else:
        assert doc["has_labels"] and 0 <= doc["recall"] <= 1 and doc["pr_auc"] is not None
        assert set(doc["recall_by_attack"]) == set(by_attack) <= set(b.ATTACK_SHIFTS)
        labelled = int(np.sum(~np.isnan(data.y)))
        assert (doc["labelled_rows"], doc["unlabelled_rows"]) == (labelled, doc["rows"] - labelled)
        assert (doc["unlabelled_rows"] > 0) == (labels == "partial")


def test_model_fitted_on_named_columns_must_match(tmp_path: Path, table: pa.Table) -> None:
    import pandas as pd

    data = load_features(_write(tmp_path, table), b.manifest_for(table)["features"], "f.parquet")
    frame = pd.DataFrame(data.train_X, columns=["a", "b", "c", "d"])
    model = b.fit(table).fit(frame)
    with pytest.raises(InputError, match=r"model.skops: the model was fitted on columns \['a', 'b', 'c', 'd'\]"):
        score(model, data, "neg_score_samples", "model.skops")
    named = b.fit(table).fit(pd.DataFrame(data.train_X, columns=b.FEATURES))
    assert score(named, data, "neg_score_samples", "model.skops").shape == (data.holdout_X.shape[0],)


def test_corrupt_or_ambiguous_features_are_input_errors(table: pa.Table, tmp_path: Path) -> None:
    from tests.hostile_files import corrupt_pages, duplicate_column

    features = b.manifest_for(table)["features"]
    with pytest.raises(InputError, match="f.parquet: corrupt Parquet data"):
        load_features(corrupt_pages(table, tmp_path / "f.parquet"), features, "f.parquet")
    with pytest.raises(InputError, match=r"d.parquet: column\(s\) \['split'\] appear more than once"):
        load_features(duplicate_column(table, "split", tmp_path / "d.parquet"), features, "d.parquet")


def test_a_skops_file_holding_a_dict_is_not_a_model(tmp_path: Path) -> None:
    import skops.io as sio

    from stages.common.model_io import load_model

    sio.dump({"threshold": 1.0}, tmp_path / "model.skops")
    with pytest.raises(InputError, match="model.skops: holds a dict, not a fitted model"):
        load_model(tmp_path / "model.skops")
