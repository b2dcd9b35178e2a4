"""The documents stages hand each other about features and models, typed and versioned.

Beside ``FLOW_SCHEMA`` (what ingest writes) these are the other two contracts:

* ``SilverManifest`` — silver's ``manifest.json``: the feature names and dtypes, their
  ``schema_hash``, and either the train/holdout split (training mode) or the window and
  the training schema it was built for (scoring mode);
* ``ModelCard`` — train's ``model-card.json``: the features and schema hash the model
  was fitted on, how to score it and the calibrated threshold.

Each has one ``read`` (``InputError`` naming the file and the missing or wrong field,
``version`` included) and one ``write``; train, eval, silver's scoring mode and score use
them, so a field means the same thing everywhere. The JSON on disk is unchanged by the
types: fields a reader does not know are kept and written back as they were.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import InputError
from .jsondoc import read_object, to_json

SCORE_METHODS = ("neg_score_samples", "predict_proba")
"""How a model's anomaly score is read (``model_io.anomaly_scores``); kept here so that reading a
card needs no model libraries (silver's image has none)."""

__all__ = [
    "MANIFEST_VERSION",
    "CARD_VERSION",
    "PASSTHROUGH",
    "SCORE_METHODS",
    "schema_hash",
    "SilverManifest",
    "ModelCard",
]

MANIFEST_VERSION = 1
CARD_VERSION = 1

PASSTHROUGH = ["ts", "uid", "src_ip", "dst_ip", "dst_port", "proto", "service", "conn_state", "label", "attack_type"]
"""Flow columns silver copies beside the features (eval's top alerts, score's alerts and incidents)."""


def schema_hash(features: list[str], dtypes: dict[str, str]) -> str:
    """sha256 of the sorted-key JSON of feature names (in order) and dtypes: what train, eval and score compare."""
    return hashlib.sha256(json.dumps({"features": features, "dtypes": dtypes}, sort_keys=True).encode()).hexdigest()


class _Fields:
    """Typed access to one document's fields; every failure names the file and the field."""

    def __init__(self, doc: dict[str, Any], uri: str, kind: str, hint: str) -> None:
        self.doc, self.uri, self.kind, self.hint = doc, uri, kind, hint

    def require(self, names: list[str]) -> None:
        missing = [n for n in names if n not in self.doc]
        if missing:
            raise InputError(f"{self.uri}: missing field(s) {missing}; a {self.kind} lacks {missing} {self.hint}")

    def version(self, supported: int) -> int:
        v = self.doc["version"]
        if isinstance(v, bool) or v != supported:
            raise InputError(
                f"{self.uri}: field 'version' is {v!r}, this release reads {self.kind} version {supported} {self.hint}"
            )
        return supported

    def wrong(self, name: str, expected: str) -> InputError:
        value = str(self.doc.get(name))
        return InputError(f"{self.uri}: field {name!r} must be {expected}, found {value[:60]}")

    def text(self, name: str, default: str | None = None) -> str:
        value = self.doc.get(name, default)
        if not isinstance(value, str):
            raise self.wrong(name, "a string")
        return value

    def count(self, name: str, default: int | None = None) -> int:
        value = self.doc.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.wrong(name, "a row count (an integer >= 0)")
        return value

    def obj(self, name: str) -> dict[str, Any]:
        value = self.doc.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise InputError(f"{self.uri}: field {name!r} must be a JSON object, found {type(value).__name__}")
        return value

    def names(self, name: str) -> list[str]:
        value = self.doc.get(name)
        if not value or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(f"{self.uri}: field {name!r} lists no features (a list of column names)")
        return list(value)

    def extra(self, cls: type) -> dict[str, Any]:
        known = {f.name for f in fields(cls)}
        return {k: v for k, v in self.doc.items() if k not in known}


def _finite(x: Any) -> bool:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:  # an int with hundreds of digits
        return False


@dataclass
class SilverManifest:
    """silver's manifest.json. ``mode`` "train": ``split`` and ``passthrough``; "score": the
    window, the context rows and ``training_schema_hash`` (the model's features it was built for)."""

    features: list[str]
    dtypes: dict[str, str]
    schema_hash: str
    rows: int
    has_labels: bool
    skipped_features: dict[str, str] = field(default_factory=dict)
    input_sha256: str = ""
    mode: str = "train"
    split: dict[str, Any] = field(default_factory=dict)
    """training mode: holdout_fraction, cutoff_ts, train_rows, holdout_rows, method."""
    passthrough: list[str] = field(default_factory=lambda: list(PASSTHROUGH))
    training_schema_hash: str = ""
    context_rows: int = 0
    window: dict[str, Any] = field(default_factory=dict)
    """scoring mode: start and end (ISO 8601 or None: open)."""
    version: int = MANIFEST_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields this release does not know, written back unchanged."""

    @property
    def train_rows(self) -> int:
        return int(self.split["train_rows"])

    @classmethod
    def build(cls, features: list[str], **kwargs: Any) -> SilverManifest:
        """A new manifest of float32 ``features`` (dtypes and schema hash derived from them)."""
        dtypes = {f: "float32" for f in features}
        return cls(features=list(features), dtypes=dtypes, schema_hash=schema_hash(list(features), dtypes), **kwargs)

    @classmethod
    def read(cls, path: Path, uri: str) -> SilverManifest:
        """The manifest in ``path`` (``uri`` names it in errors), checked field by field."""
        return cls.from_dict(read_object(path, uri, "manifest"), uri)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], uri: str) -> SilverManifest:
        f = _Fields(doc, uri, "manifest", "when another version of the silver stage wrote it; re-run the silver stage")
        mode = doc.get("mode", "train")
        if mode not in ("train", "score"):
            raise f.wrong("mode", "'train' or 'score'")
        specific = ["split"] if mode == "train" else ["training_schema_hash"]
        f.require(["version", "features", "dtypes", "schema_hash", "rows", "has_labels", *specific])
        version = f.version(MANIFEST_VERSION)
        features = f.names("features")
        dtypes = doc["dtypes"]
        if not isinstance(dtypes, dict):
            raise f.wrong("dtypes", "a JSON object of feature name to dtype")
        recomputed = schema_hash(features, dtypes)
        if recomputed != doc["schema_hash"]:
            raise InputError(
                f"{uri}: schema_hash does not match its features/dtypes (recorded {doc['schema_hash']}, recomputed "
                f"{recomputed}); a manifest that does not match its own features was edited or corrupted — re-run silver"
            )
        if not isinstance(doc["has_labels"], bool):
            raise f.wrong("has_labels", "true or false")
        out = cls(
            features=features,
            dtypes=dict(dtypes),
            schema_hash=recomputed,
            rows=f.count("rows"),
            has_labels=doc["has_labels"],
            skipped_features=dict(f.obj("skipped_features")),
            input_sha256=f.text("input_sha256", ""),
            mode=mode,
            version=version,
            extra=f.extra(cls),
        )
        if mode == "train":
            split = doc["split"]
            rows = split.get("train_rows") if isinstance(split, dict) else None
            if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
                raise InputError(
                    f"{uri}: split.train_rows must be a row count (an integer >= 0), found {str(rows)[:40]}"
                )
            out.split = dict(split)
            passthrough = doc.get("passthrough", PASSTHROUGH)
            if not isinstance(passthrough, list) or not all(isinstance(c, str) for c in passthrough):
                raise f.wrong("passthrough", "a list of column names")
            out.passthrough = list(passthrough)
        else:
            out.training_schema_hash = f.text("training_schema_hash")
            out.context_rows = f.count("context_rows", 0)
            out.window = dict(f.obj("window"))
        return out

    def as_dict(self) -> dict[str, Any]:
        """The JSON document (training-mode manifests carry no ``mode`` field, as they always have)."""
        doc: dict[str, Any] = {
            "version": self.version,
            "features": self.features,
            "dtypes": self.dtypes,
            "schema_hash": self.schema_hash,
            "rows": self.rows,
            "has_labels": self.has_labels,
            "skipped_features": self.skipped_features,
            "input_sha256": self.input_sha256,
        }
        if self.mode == "train":
            doc.update(passthrough=self.passthrough, split=self.split)
        else:
            doc.update(
                mode=self.mode,
                training_schema_hash=self.training_schema_hash,
                context_rows=self.context_rows,
                window=self.window,
            )
        return {**self.extra, **doc}

    def write(self, path: Path) -> None:
        """Deterministic JSON (sorted keys, indent 2, trailing newline) at ``path``."""
        path.write_text(to_json(self.as_dict()), encoding="utf-8")


@dataclass
class ModelCard:
    """train's model-card.json: what the model was fitted on, how to score it, its threshold."""

    features: list[str]
    schema_hash: str
    threshold: float
    """Flows with score >= threshold are alerts (scores: higher = more anomalous)."""
    score_method: str
    """One of ``SCORE_METHODS``."""
    model_sha256: str
    """sha256 of the model.skops file this card describes."""
    run_id: str = ""
    model_type: str = ""
    calibration: dict[str, Any] = field(default_factory=dict)
    trained_on: str = ""
    train_rows: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    train_metrics: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    """Per-feature medians, scales and PSI bins scoring compares new traffic with."""
    mlflow: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    version: int = CARD_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields this release does not know, written back unchanged."""

    @classmethod
    def read(cls, path: Path, uri: str) -> ModelCard:
        """The card in ``path`` (``uri`` names it in errors), checked field by field."""
        return cls.from_dict(read_object(path, uri, "model card"), uri)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], uri: str) -> ModelCard:
        f = _Fields(doc, uri, "model card", "when the train stage of another release wrote it; retrain")
        f.require(["version", "features", "schema_hash", "threshold", "score_method", "model_sha256"])
        version = f.version(CARD_VERSION)
        if not isinstance(doc["features"], list):
            raise f.wrong("features", "a list of column names")
        if not _finite(doc["threshold"]):
            raise f.wrong("threshold", "a finite number")
        if doc["score_method"] not in SCORE_METHODS:
            raise f.wrong("score_method", f"one of {list(SCORE_METHODS)}")
        return cls(
            features=f.names("features"),
            schema_hash=f.text("schema_hash"),
            threshold=float(doc["threshold"]),
            score_method=doc["score_method"],
            model_sha256=f.text("model_sha256"),
            run_id=f.text("run_id", ""),
            model_type=f.text("model_type", ""),
            calibration=f.obj("calibration"),
            trained_on=f.text("trained_on", ""),
            train_rows=f.count("train_rows", 0),
            params=f.obj("params"),
            train_metrics=f.obj("train_metrics"),
            reference=f.obj("reference"),
            mlflow=f.obj("mlflow"),
            created_at=f.text("created_at", ""),
            version=version,
            extra=f.extra(cls),
        )

    def as_dict(self) -> dict[str, Any]:
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**self.extra, **doc}

    def write(self, path: Path) -> None:
        """Deterministic JSON (sorted keys, indent 2, trailing newline) at ``path``."""
        path.write_text(to_json(self.as_dict()), encoding="utf-8")
