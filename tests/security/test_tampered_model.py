"""A model replaced in storage is refused by eval before anything of it runs.

The attacker's position: write access to ``models/<run>/model.skops`` in the bucket. The
genuine features, manifest and card of a real pipeline run (see conftest) are copied to a
fresh prefix, a tampered model is put next to them, and eval runs against the s3:// URIs.
A control run with the genuine model at the same layout passes, so the refusals below
are caused by the tampering and nothing else.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import attempts, base_env, keys, run, s3_client
from tests.security.conftest import BUCKET, PipelineRun

pytestmark = [pytest.mark.services, pytest.mark.slow]


class _OpensAFile:
    """Unpickling this creates a file: proof that the pickle was (or was not) executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _skops_with_system_call(marker: Path) -> bytes:
    """A valid skops file whose estimator holds ``os.system`` — an untrusted type."""
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    return sio.dumps(FunctionTransformer(func=os.system, kw_args={"command": f"touch {marker}"}))


def _pickle_renamed(marker: Path) -> bytes:
    return pickle.dumps(_OpensAFile(marker))


def _card_untouched(marker: Path) -> bytes:
    """A model replaced without touching the card: refused on its sha256 before skops reads it."""
    return _skops_with_system_call(marker)


def _stage_inputs(pipeline_run: PipelineRun, s3_env: dict[str, str], model: bytes, rebind: bool = True) -> str:
    """Copy the run's genuine eval inputs to a fresh prefix with ``model`` as model.skops; return the prefix.

    ``rebind``: the attacker can write the card too and sets its ``model_sha256`` to the
    tampered file's, so what is refused is the model's content, not the digest mismatch.
    """
    client = s3_client(s3_env)
    prefix = f"tamper-{uuid.uuid4().hex[:8]}"
    name = pipeline_run.name
    for src in (f"silver/{name}/features.parquet", f"silver/{name}/manifest.json", f"models/{name}/model-card.json"):
        client.copy_object(Bucket=BUCKET, Key=f"{prefix}/{Path(src).name}", CopySource={"Bucket": BUCKET, "Key": src})
    client.upload_fileobj(io.BytesIO(model), BUCKET, f"{prefix}/model.skops")
    if rebind:
        card = json.loads(client.get_object(Bucket=BUCKET, Key=f"{prefix}/model-card.json")["Body"].read())
        card["model_sha256"] = hashlib.sha256(model).hexdigest()
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/model-card.json", Body=json.dumps(card).encode())
    return prefix


def _eval(prefix: str, env: dict[str, str]) -> Any:
    s3 = f"s3://{BUCKET}/{prefix}"
    return run(
        "eval",
        "--features", f"{s3}/features.parquet",
        "--manifest", f"{s3}/manifest.json",
        "--model", f"{s3}/model.skops",
        "--card", f"{s3}/model-card.json",
        "--metrics-out", f"{s3}/eval/metrics.json",
        "--report-out", f"{s3}/eval/report.html",
        "--gate-min-pr-auc", "0", "--gate-min-recall", "0", "--gate-max-fpr", "1", "--gate-max-alert-rate", "1",
        "--run-id", prefix,
        env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        pytest.param(_skops_with_system_call, r"model refused, it contains untrusted types \['posix.system'\]",
                     id="skops-untrusted-type"),
        pytest.param(_pickle_renamed, "not a readable skops model", id="pickle-renamed"),
        pytest.param(_card_untouched, "is not the model_sha256 .* refusing to score", id="card-digest-mismatch"),
        pytest.param(None, None, id="genuine-control"),
    ],
)  # fmt: skip
def test_eval_refuses_a_tampered_model_from_s3(
    tamper: Callable[[Path], bytes] | None,
    message: str | None,
    pipeline_run: PipelineRun,
    s3_server: dict[str, str],
    postgres: dict[str, str],
    audit_db: Any,
    tmp_path: Path,
) -> None:
    import re

    marker = tmp_path / "payload-ran"
    if tamper is None:
        key = f"models/{pipeline_run.name}/model.skops"
        model = s3_client(s3_server).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    else:
        model = tamper(marker)
    prefix = _stage_inputs(pipeline_run, s3_server, model, rebind=tamper is not _card_untouched)
    done = _eval(prefix, {**base_env(), **postgres, **s3_server})
    outputs = sorted(k for k in keys(s3_server, f"{prefix}/eval/"))
    if tamper is None:
        assert done.returncode == 0, done.stderr[-3000:]
        assert outputs == [f"{prefix}/eval/metrics.json", f"{prefix}/eval/report.html"]
        return
    assert done.returncode == 2, done.stderr[-3000:]
    assert message is not None and re.search(message, done.error()), done.error()
    assert "model.skops" in done.error()  # names the file
    assert not marker.exists()  # the payload never ran
    assert outputs == []  # nothing scored, nothing published
    [(attempt, status, code, error)] = attempts(audit_db, prefix, "eval")
    assert (status, code) == ("FAILED", 2) and re.search(message, error or "")
