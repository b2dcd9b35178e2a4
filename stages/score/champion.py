"""Which model scores: the registry's ``champion``, an explicit model URI, or local files.

Resolving happens once per run, in the workflow's first step, and its result (model,
card, training manifest) is passed on as files: if the alias moves mid-run, the run
still scores with one model. Only MlflowClient calls the REST API serves are used
(mlflow-skinny in the image); "not found" is no champion yet — a bad input, not a fault.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from stages.common.config import Settings
from stages.common.errors import InputError, TransientError
from stages.common.mlflow_calls import MlflowCalls, MlflowRefused

__all__ = ["Resolved", "resolve", "check_contract"]

log = logging.getLogger(__name__)
ALIAS = "champion"
NO_CHAMPION = (
    "no champion yet: run the training pipeline first (python -m workflows demo, or the training WorkflowTemplate)"
)


@dataclass(frozen=True)
class Resolved:
    """Local copies of the chosen model and what describes it."""

    model: Path
    card: Path
    manifest: Path
    source: str
    """models:/name/version or the URI it came from, for the audit and the report."""


def _not_found(exc: BaseException) -> bool:
    return isinstance(exc, MlflowRefused) and exc.not_found


def from_registry(calls: MlflowCalls, model_uri: str, into: Path) -> Resolved:
    """Download the model version behind ``models:/<name>@<alias>`` or ``models:/<name>/<version>``.

    Every MLflow call goes through ``calls`` (retries, then TransientError: exit 75).
    """
    from mlflow import MlflowClient

    calls.limit_http_retries()
    tracking_uri = calls.tracking_uri

    if not model_uri.startswith("models:/"):
        raise InputError(f"--model-uri {model_uri!r}: expected models:/<name>@<alias> or models:/<name>/<version>")
    ref = model_uri[len("models:/") :]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            mv = calls.call("read the alias", lambda: client.get_model_version_by_alias(name, alias))
        else:
            name, _, version = ref.partition("/")
            mv = calls.call("read the model version", lambda: client.get_model_version(name, version))
    except InputError:
        raise
    except Exception as exc:
        if _not_found(exc):
            raise InputError(f"{model_uri}: {NO_CHAMPION}") from exc
        raise
    if not mv.run_id:
        raise InputError(
            f"{model_uri}: version {mv.version} has no MLflow run; it was not registered by this pipeline's "
            "train stage — retrain"
        )
    into.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for name_in_run in ("model-card.json", "manifest.json"):
        try:
            got = calls.call(
                f"download {name_in_run}",
                partial(client.download_artifacts, mv.run_id, name_in_run, str(into)),
            )
        except Exception as exc:
            if isinstance(exc, TransientError):
                raise
            raise InputError(
                f"{model_uri}: version {mv.version} has no {name_in_run} in run {mv.run_id}; it was not "
                "registered by this pipeline's train stage — retrain"
            ) from exc
        files[name_in_run] = Path(got)
    from mlflow.artifacts import download_artifacts

    model_dir = Path(
        calls.call(
            "download the model",
            lambda: download_artifacts(artifact_uri=mv.source, dst_path=str(into / "model"), tracking_uri=tracking_uri),
        )
    )
    skops = sorted(model_dir.rglob("*.skops"))
    if not skops:
        raise InputError(f"{model_uri}: version {mv.version} has no .skops model file; it was not logged by train")
    log.info("resolved %s to %s version %s (run %s)", model_uri, mv.name, mv.version, mv.run_id)
    return Resolved(skops[0], files["model-card.json"], files["manifest.json"], f"models:/{mv.name}/{mv.version}")


def resolve(args: Any, storage: Any, settings: Settings, into: Path) -> Resolved:
    """Local files (``--model`` + ``--card``) win; else the registry (``--model-uri``, default the champion)."""
    if args.model or args.card:
        if not (args.model and args.card):
            raise InputError("--model and --card go together (a local model needs its card)")
        manifest = storage.fetch(args.training_manifest) if args.training_manifest else None
        model, card = storage.fetch(args.model), storage.fetch(args.card)
        if manifest is None:  # the card alone describes the features; the resolve step needs a manifest
            manifest = into / "manifest-from-card.json"
            into.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(card, manifest)
        return Resolved(model, card, manifest, args.model)
    if not settings.mlflow_tracking_uri:
        raise InputError(f"no model: MLFLOW_TRACKING_URI is not set and no --model/--card given; {NO_CHAMPION}")
    uri = args.model_uri or f"models:/{args.registered_model}@{ALIAS}"
    return from_registry(MlflowCalls.from_settings(settings), uri, into)


def check_contract(card: dict[str, Any], silver: dict[str, Any], card_uri: str, silver_uri: str) -> None:
    """The card must be a model card and the silver batch built for exactly this model's features."""
    from stages.common.contracts import ModelCard, SilverManifest

    model = ModelCard.from_dict(card, card_uri)
    batch = SilverManifest.from_dict(silver, silver_uri)
    if batch.mode != "score":
        raise InputError(f"{silver_uri}: not a scoring-mode manifest; run silver with --mode score")
    if batch.training_schema_hash != model.schema_hash or batch.features != model.features:
        raise InputError(
            f"manifest/model mismatch: {silver_uri} was built for schema {batch.training_schema_hash} but "
            f"the model {card_uri} expects {model.schema_hash}; rebuild the features with this model's "
            "training manifest (silver --mode score --training-manifest ...)"
        )
