"""The model artifact contract between train and eval: skops files, never pickle.

``load_model`` refuses any file whose types are not in ``TRUSTED_TYPES`` (a tampered
or unexpected artifact from storage is an input error, not code to execute).
Scores follow one convention: higher means more anomalous.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = [
    "TRUSTED_TYPES",
    "SCORE_METHODS",
    "save_model",
    "load_model",
    "anomaly_scores",
    "registry_artifact_sha256",
    "FILE_DIGEST_TAG",
    "ARTIFACT_DIGEST_TAG",
]

# Types skops may construct when loading, beyond its own safe defaults. Keep explicit.
TRUSTED_TYPES: list[str] = [
    "sklearn.tree._tree.Tree",  # IsolationForest's trees
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # HistGradientBoosting
]

SCORE_METHODS = ("neg_score_samples", "predict_proba")

# Model-version tags train sets so eval can tie a registry version to the file it scores:
# the sha256 of the published model.skops, and of the model.skops the registry stores
# (skops files are zip archives with timestamps, so the two differ).
FILE_DIGEST_TAG = "model_sha256"
ARTIFACT_DIGEST_TAG = "artifact_sha256"


def save_model(estimator: Any, path: Path) -> None:
    import skops.io as sio

    sio.dump(estimator, path)


def load_model(path: Path) -> Any:
    """Load a skops model, refusing types outside ``TRUSTED_TYPES`` with a clear error."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - any parse failure means a bad artifact
        raise InputError(f"{path}: not a readable skops model ({type(exc).__name__}: {exc})") from exc
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise InputError(f"{path}: model refused, it contains untrusted types {refused}")
    try:
        model = sio.load(path, trusted=untrusted)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{path}: model could not be loaded ({type(exc).__name__}: {exc})") from exc
    if not hasattr(model, "fit"):  # a skops file can hold plain data (a dict, a list)
        raise InputError(f"{path}: holds a {type(model).__name__}, not a fitted model")
    return model


def anomaly_scores(estimator: Any, X: Any, method: str) -> Any:
    """Scores where higher = more anomalous: ``-score_samples`` (Isolation Forest) or P(malicious)."""
    if method == "neg_score_samples":
        return -estimator.score_samples(X)
    if method == "predict_proba":
        return estimator.predict_proba(X)[:, 1]
    raise InputError(f"model card: unknown score method {method!r} (expected one of {SCORE_METHODS})")


def registry_artifact_sha256(client: Any, name: str, version: str, tracking_uri: str) -> str:
    """sha256 of the ``model.skops`` the registry stores for ``name`` version ``version``."""
    import tempfile

    import mlflow

    from .storage import sha256_file

    uri = client.get_model_version_download_uri(name, version).rstrip("/") + "/model.skops"
    with tempfile.TemporaryDirectory(prefix="registry-model-") as tmp:
        return sha256_file(
            mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri)
        )
