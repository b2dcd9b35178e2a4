"""The partitioned WorkflowTemplate on the real Kubernetes + Argo + MinIO.

Three files land under an S3 prefix; ``argo submit --from workflowtemplate/cybersec-mlops-
partitioned`` fans ingest and silver out to one pod per file, train and eval read the
parts as one directory artifact, one eval-part pod per holdout file scores it for eval to
merge. A second submission of the unchanged prefix is answered
by the controller's memo cache: no ingest pod, the same RAW objects.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster import kube
from tests.helpers import landing_files

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

FILES = 3


def submit(prefix: str) -> dict[str, Any]:
    name = kube.argo(
        "submit",
        "--from",
        "workflowtemplate/cybersec-mlops-partitioned",
        "-p",
        f"source=s3://{kube.BUCKET}/{prefix}",
        "-p",
        "gate-min-recall=0",
        "-o",
        "name",
    ).stdout.strip()
    return kube.wait_workflow(name, timeout=1500)


def children(wf: dict[str, Any], task: str) -> list[dict[str, Any]]:
    """The fan-out's item nodes of ``task`` (``ingest(0:{...})``, not their attempts ``...(0)``), in item order."""
    item = re.compile(rf"^{task}\((\d+):.*\)$")
    attempt = re.compile(r"\)\(\d+\)$")
    nodes = [n for n in wf["status"]["nodes"].values() if item.match(n.get("displayName", ""))]
    nodes = [n for n in nodes if not attempt.search(n["displayName"])]
    return sorted(nodes, key=lambda n: int(item.match(n["displayName"]).group(1)))  # type: ignore[union-attr]


def install() -> None:
    """As the README says: `kubectl apply -k k8s/argo-controller/` (the memo cache the controller may
    update) and `kubectl apply -k k8s/`, here without the submitter Job (this test submits with the argo CLI)."""
    kube.kubectl("apply", "-n", "argo", "-k", str(kube.REPO / "k8s" / "argo-controller"))
    docs = [d for d in yaml.safe_load_all(kube.kubectl("kustomize", str(kube.REPO / "k8s"))) if d]
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([d for d in docs if d["kind"] != "Job"]))


def test_fan_out_then_a_memoized_second_run(cluster: dict[str, str], tmp_path: Path) -> None:
    install()
    prefix = f"landing/partitioned-{uuid.uuid4().hex[:8]}/"
    for path in landing_files(tmp_path / "landing", 30_000, FILES):
        kube.s3().upload_file(str(path), kube.BUCKET, prefix + path.name)

    first = submit(prefix)
    assert first["status"]["phase"] == "Succeeded", first["status"].get("message")
    name = first["metadata"]["name"]
    ingest = children(first, "ingest")
    assert len(ingest) == FILES and all(n["phase"] == "Succeeded" for n in ingest)
    assert len(children(first, "silver")) == FILES
    parts = [k for k in kube.keys(f"silver/{name}/") if k.endswith("features.parquet")]
    assert parts == [f"silver/{name}/part={k:05d}/features.parquet" for k in range(FILES)]
    assert f"eval/{name}/metrics.json" in kube.keys(f"eval/{name}/")
    # eval fanned out: one eval-part pod per holdout file wrote its scores; eval merged them
    scored = children(first, "eval-part")
    assert scored and all(n["phase"] == "Succeeded" for n in scored)
    scores = [k for k in kube.keys(f"eval/{name}/parts/") if k.endswith("scores.parquet")]
    holdout = range(FILES - len(scored), FILES)
    assert scores == [f"eval/{name}/parts/part={k:05d}/scores.parquet" for k in holdout]
    # every pod of a fan-out has its own audit row
    stages = [
        s for (s,) in kube.audit("SELECT stage FROM stage_attempts WHERE run_id = %s AND status = 'SUCCEEDED'", name)
    ]
    for stage, keys in (("ingest", range(FILES)), ("silver", range(FILES)), ("eval-part", holdout)):
        assert sorted(s for s in stages if s.startswith(stage + "/")) == [f"{stage}/part={k:05d}" for k in keys]
    raw = [k for k in kube.keys("raw/parts/") if k.endswith("flows.parquet")]
    stamps = {k: kube.s3().head_object(Bucket=kube.BUCKET, Key=k)["LastModified"] for k in raw}

    second = submit(prefix)
    assert second["status"]["phase"] == "Succeeded", second["status"].get("message")
    memo = [n.get("memoizationStatus") or {} for n in children(second, "ingest")]
    assert len(memo) == FILES and all(m.get("hit") for m in memo), memo
    ran = [
        n for n in kube.pod_nodes(second) if n.get("displayName", "").startswith("ingest(") and n.get("hostNodeName")
    ]
    assert ran == [], "a memoized partition runs no pod"
    assert {k: kube.s3().head_object(Bucket=kube.BUCKET, Key=k)["LastModified"] for k in raw} == stamps
