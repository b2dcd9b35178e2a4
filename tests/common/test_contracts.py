"""The typed artifact contracts (silver manifest, model card) and the one scoring path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stages.common.contracts import PASSTHROUGH, ModelCard, SilverManifest, schema_hash
from stages.common.errors import InputError
from stages.common.model_io import SCORE_SLICE_ROWS, score_rows, score_stream

FEATURES = ["log_duration", "log_src_bytes", "src_conns_1m"]


def _manifest(**changes: Any) -> dict[str, Any]:
    doc = SilverManifest.build(
        FEATURES,
        rows=10,
        has_labels=True,
        input_sha256="0" * 64,
        split={"holdout_fraction": 0.3, "cutoff_ts": None, "train_rows": 7, "holdout_rows": 3, "method": "time"},
    ).as_dict()
    doc.update(changes)
    return doc


def _score_manifest() -> dict[str, Any]:
    return SilverManifest.build(
        FEATURES,
        mode="score",
        training_schema_hash="a" * 64,
        rows=5,
        context_rows=2,
        window={"start": "2026-01-01T00:00:00+00:00", "end": None},
        has_labels=False,
    ).as_dict()


def _card(**changes: Any) -> dict[str, Any]:
    doc = ModelCard(
        features=FEATURES,
        schema_hash=schema_hash(FEATURES, {f: "float32" for f in FEATURES}),
        threshold=0.61,
        score_method="neg_score_samples",
        model_sha256="b" * 64,
        mlflow={"run_id": None},
    ).as_dict()
    doc.update(changes)
    return doc


def _write(tmp_path: Path, doc: Any, name: str = "doc.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_schema_hash_is_the_sorted_key_json_of_names_and_dtypes() -> None:
    dtypes = {f: "float32" for f in FEATURES}
    expected = hashlib.sha256(json.dumps({"features": FEATURES, "dtypes": dtypes}, sort_keys=True).encode())
    assert schema_hash(FEATURES, dtypes) == expected.hexdigest()
    assert schema_hash(list(reversed(FEATURES)), dtypes) != expected.hexdigest()


def test_training_manifest_json_is_what_silver_always_wrote(tmp_path: Path) -> None:
    doc = _manifest()
    assert set(doc) == {
        "version", "features", "dtypes", "schema_hash", "passthrough", "split", "rows", "has_labels",
        "skipped_features", "input_sha256",
    }  # fmt: skip
    assert doc["passthrough"] == PASSTHROUGH and doc["version"] == 1
    SilverManifest.from_dict(doc, "m.json").write(tmp_path / "m.json")
    assert (tmp_path / "m.json").read_text() == json.dumps(doc, indent=2, sort_keys=True) + "\n"
    back = SilverManifest.read(tmp_path / "m.json", "m.json")
    assert (back.mode, back.train_rows, back.features, back.has_labels) == ("train", 7, FEATURES, True)


def test_scoring_manifest_round_trip(tmp_path: Path) -> None:
    doc = _score_manifest()
    assert doc["mode"] == "score" and "split" not in doc and "passthrough" not in doc
    SilverManifest.from_dict(doc, "s.json").write(tmp_path / "s.json")
    back = SilverManifest.read(tmp_path / "s.json", "s.json")
    assert (back.mode, back.training_schema_hash, back.context_rows) == ("score", "a" * 64, 2)
    assert back.as_dict() == doc


def test_unknown_fields_survive_a_round_trip(tmp_path: Path) -> None:
    card = ModelCard.from_dict(_card(calibration_rows=1234), "c.json")
    assert card.extra == {"calibration_rows": 1234}
    card.write(tmp_path / "c.json")
    assert json.loads((tmp_path / "c.json").read_text())["calibration_rows"] == 1234
    manifest = SilverManifest.from_dict(_manifest(note="kept"), "m.json")
    assert manifest.as_dict()["note"] == "kept"


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        (_manifest(version=2), r"m.json: field 'version' is 2, this release reads manifest version 1"),
        (_manifest(version=True), r"m.json: field 'version' is True"),
        ({k: v for k, v in _manifest().items() if k != "dtypes"}, r"m.json: missing field\(s\) \['dtypes'\]"),
        ({k: v for k, v in _manifest().items() if k != "split"}, r"manifest lacks \['split'\]"),
        (_manifest(features="log_duration"), "m.json: field 'features' lists no features"),
        (_manifest(features=list(reversed(FEATURES))), "schema_hash does not match its features/dtypes"),
        (_manifest(rows=-1), r"m.json: field 'rows' must be a row count"),
        (_manifest(has_labels="yes"), "m.json: field 'has_labels' must be true or false"),
        (_manifest(mode="replay"), "m.json: field 'mode' must be 'train' or 'score'"),
        (_manifest(split={"train_rows": "7"}), "m.json: split.train_rows must be a row count"),
        (_manifest(skipped_features=["a"]), "m.json: field 'skipped_features' must be a JSON object, found list"),
    ],
    ids=[
        "version-2", "version-bool", "no-dtypes", "no-split", "features-text", "edited", "rows-negative",
        "labels-text", "mode", "train-rows-text", "skipped-list",
    ],
)  # fmt: skip
def test_manifest_errors_name_the_file_and_field(tmp_path: Path, doc: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        SilverManifest.read(_write(tmp_path, doc, "m.json"), "m.json")


def test_scoring_manifest_needs_its_training_schema(tmp_path: Path) -> None:
    doc = {k: v for k, v in _score_manifest().items() if k != "training_schema_hash"}
    with pytest.raises(InputError, match=r"s.json: missing field\(s\) \['training_schema_hash'\]"):
        SilverManifest.read(_write(tmp_path, doc), "s.json")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "m.json: not a readable JSON manifest"),
        ("[1]", "m.json: expected a JSON object at the top level of the manifest, found list"),
    ],
)
def test_manifest_that_is_not_a_json_object(tmp_path: Path, content: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        SilverManifest.read(_write(tmp_path, content), "m.json")


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        (_card(version=2), r"c.json: field 'version' is 2, this release reads model card version 1.*retrain"),
        ({k: v for k, v in _card().items() if k != "version"}, r"c.json: missing field\(s\) \['version'\]"),
        ({k: v for k, v in _card().items() if k != "model_sha256"}, r"missing field\(s\) \['model_sha256'\]"),
        (_card(threshold=float("inf")), "c.json: field 'threshold' must be a finite number"),
        (_card(threshold=True), "c.json: field 'threshold' must be a finite number"),
        (_card(score_method="decision_function"), "c.json: field 'score_method' must be one of"),
        (_card(features=[1, 2]), "c.json: field 'features' lists no features"),
        (_card(mlflow="run-1"), "c.json: field 'mlflow' must be a JSON object, found str"),
        (_card(train_rows=-3), "c.json: field 'train_rows' must be a row count"),
    ],
    ids=[
        "version-2",
        "no-version",
        "no-digest",
        "threshold-inf",
        "threshold-bool",
        "method",
        "features",
        "mlflow-text",
        "train-rows",
    ],  # fmt: skip
)
def test_card_errors_name_the_file_and_field(tmp_path: Path, doc: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        ModelCard.read(_write(tmp_path, doc, "c.json"), "c.json")


def test_card_json_keeps_its_fields_and_types(tmp_path: Path) -> None:
    card = ModelCard.from_dict(_card(), "c.json")
    card.write(tmp_path / "c.json")
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc == _card() and doc["threshold"] == 0.61 and doc["version"] == 1
    assert ModelCard.read(tmp_path / "c.json", "c.json") == card


@pytest.fixture(scope="module")
def forest() -> tuple[Any, np.ndarray]:
    from sklearn.ensemble import IsolationForest
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import RobustScaler

    rng = np.random.default_rng(4)
    X = rng.normal(size=(2 * SCORE_SLICE_ROWS + 1234, 4)).astype(np.float32)
    model = make_pipeline(RobustScaler(), IsolationForest(n_estimators=20, max_samples=512, random_state=0))
    return model.fit(X[:5000]), X


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_score_rows_equals_one_call_bit_for_bit(forest: tuple[Any, np.ndarray], workers: int) -> None:
    model, X = forest
    scores = score_rows(model, X, "neg_score_samples", workers=workers)
    assert scores.dtype == np.float64 and scores.shape == (len(X),)
    np.testing.assert_array_equal(scores, -model.score_samples(X))


def test_score_rows_of_no_rows(forest: tuple[Any, np.ndarray]) -> None:
    model, X = forest
    assert score_rows(model, X[:0], "neg_score_samples").shape == (0,)


def test_score_stream_keeps_order_and_payloads(forest: tuple[Any, np.ndarray]) -> None:
    model, X = forest
    items = [(i, X[i * 1000 : (i + 1) * 1000]) for i in range(7)]
    got = list(score_stream(model, iter(items), "neg_score_samples", workers=2))
    assert [p for p, _, _ in got] == list(range(7))
    for (_, x, s), (_, want_x) in zip(got, items, strict=True):
        assert x is want_x
        np.testing.assert_array_equal(s, -model.score_samples(want_x))


def test_named_columns_are_passed_as_a_frame(forest: tuple[Any, np.ndarray]) -> None:
    import pandas as pd
    from sklearn.ensemble import IsolationForest

    _, X = forest
    names = ["a", "b", "c", "d"]
    model = IsolationForest(n_estimators=10, random_state=0).fit(pd.DataFrame(X[:2000], columns=names))
    np.testing.assert_array_equal(
        score_rows(model, X[:3000], "neg_score_samples", names),
        -model.score_samples(pd.DataFrame(X[:3000], columns=names)),
    )
    with pytest.raises(InputError, match="fitted on named columns"):
        score_rows(model, X[:10], "neg_score_samples")


def test_unknown_score_method_is_an_input_error(forest: tuple[Any, np.ndarray]) -> None:
    model, X = forest
    with pytest.raises(InputError, match="unknown score method 'decision_function'"):
        score_rows(model, X[:10], "decision_function")
