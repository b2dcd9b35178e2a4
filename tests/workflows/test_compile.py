"""Compile: deterministic output, committed YAML in sync with the Hera code, and the DAG's shape."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflows import compile as wf_compile
from workflows.images import load_bake
from workflows.stagespec import STAGE_SPECS

REPO = Path(__file__).resolve().parents[2]


def load(text: str) -> dict[str, Any]:
    return dict(yaml.safe_load(text))


@pytest.fixture(scope="module")
def compiled() -> dict[str, dict[str, Any]]:
    """Freshly compiled documents by kind."""
    return {kind: load(wf_compile.render(kind)) for kind in wf_compile.TARGETS}


def test_compile_is_deterministic(tmp_path: Path) -> None:
    first = wf_compile.write(tmp_path / "a", tmp_path / "k8s-a")
    second = wf_compile.write(tmp_path / "b", tmp_path / "k8s-b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert sorted(p.name for p in first) == [
        *(["cron-retrain.yaml"] * 2),
        *(["cron-scoring.yaml"] * 2),
        *(["workflow-template-partitioned.yaml"] * 2),
        "workflow-template.yaml",
        "workflow-template.yaml",
        "workflow.yaml",
    ]


def test_committed_manifests_equal_what_the_code_compiles() -> None:
    """Golden test: the full YAML, byte for byte. Regenerate with `python -m workflows compile`."""
    for path, expected in wf_compile.outputs().items():
        assert path.exists(), f"{path} is missing: run `python -m workflows compile` and commit it"
        assert path.read_text() == expected, f"{path} drifts from the Hera code: run `python -m workflows compile`"
    assert wf_compile.check() == []


def test_check_reports_missing_and_stale_files(tmp_path: Path) -> None:
    wf_compile.write(tmp_path, tmp_path / "k8s")
    stale = tmp_path / "workflow.yaml"
    stale.write_text(stale.read_text().replace("activeDeadlineSeconds: 14400", "activeDeadlineSeconds: 60"))
    (tmp_path / "k8s" / "workflow-template.yaml").unlink()
    diffs = wf_compile.check(tmp_path, tmp_path / "k8s")
    assert len(diffs) == 2
    assert any("-  activeDeadlineSeconds: 60" in d and "+  activeDeadlineSeconds: 14400" in d for d in diffs)
    assert any("workflow-template.yaml: missing; run `python -m workflows compile`" in d for d in diffs)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workflows", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_cli_check_exits_1_on_drift_and_0_after_compiling(tmp_path: Path) -> None:
    out, k8s = tmp_path / "compiled", tmp_path / "k8s"
    drift = run_cli("compile", "--check", "--output-dir", str(out), "--k8s-dir", str(k8s))
    assert drift.returncode == 1
    assert "9 compiled manifest(s)" in drift.stderr and "missing" in drift.stdout
    assert not out.exists(), "--check must not write anything"
    assert run_cli("compile", "--output-dir", str(out), "--k8s-dir", str(k8s)).returncode == 0
    ok = run_cli("compile", "--check", "--output-dir", str(out), "--k8s-dir", str(k8s))
    assert ok.returncode == 0, ok.stderr


def test_template_and_workflow_share_one_spec(compiled: dict[str, dict[str, Any]]) -> None:
    template, workflow = compiled["WorkflowTemplate"], compiled["Workflow"]
    assert template["spec"] == workflow["spec"]
    assert template["metadata"]["name"] == "cybersec-mlops-pipeline"
    assert workflow["metadata"]["generateName"] == "cybersec-mlops-"
    assert "name" not in workflow["metadata"]


def templates(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def test_dag_orders_the_four_stages_and_eval_reads_silver(compiled: dict[str, dict[str, Any]]) -> None:
    doc = compiled["Workflow"]
    assert doc["spec"]["entrypoint"] == "pipeline"
    tasks = {t["name"]: t for t in templates(doc)["pipeline"]["dag"]["tasks"]}
    assert list(tasks) == ["ingest", "silver", "train", "eval"]
    assert [tasks[n].get("depends") for n in tasks] == [None, "ingest", "silver", "silver && train"]
    froms = {a["name"]: a["from"] for a in tasks["eval"]["arguments"]["artifacts"]}
    assert froms == {
        "features": "{{tasks.silver.outputs.artifacts.features}}",
        "manifest": "{{tasks.silver.outputs.artifacts.manifest}}",
        "model": "{{tasks.train.outputs.artifacts.model}}",
        "card": "{{tasks.train.outputs.artifacts.card}}",
    }


EXPECTED_KEYS = {
    "ingest": ["raw/{{workflow.name}}/flows.parquet", "raw/{{workflow.name}}/rejects.parquet"],
    "silver": ["silver/{{workflow.name}}/features.parquet", "silver/{{workflow.name}}/manifest.json"],
    "train": ["models/{{workflow.name}}/model.skops", "models/{{workflow.name}}/model-card.json"],
    "eval": ["eval/{{workflow.name}}/metrics.json", "eval/{{workflow.name}}/report.html"],
}


@pytest.mark.parametrize("stage", list(EXPECTED_KEYS))
def test_stage_template_follows_the_argo_conventions(compiled: dict[str, dict[str, Any]], stage: str) -> None:
    template = templates(compiled["Workflow"])[stage]
    container = template["container"]
    assert container["image"] == (
        "{{workflow.parameters.image-registry}}/cybersec-mlops-" + stage + ":{{workflow.parameters.image-tag}}"
    )
    assert container["command"] == ["python", "-m", f"stages.{stage}"]
    assert "--params-dir=/tmp/outputs/params" in container["args"]
    outputs = template["outputs"]["artifacts"]
    assert [a["s3"]["key"] for a in outputs] == EXPECTED_KEYS[stage]
    for artifact in outputs:
        assert artifact["archive"] == {"none": {}}
        assert artifact["path"] == "/tmp/outputs/" + artifact["s3"]["key"].rpartition("/")[2]
        assert f"={artifact['path']}" in " ".join(container["args"])
        assert artifact.get("optional", False) is (stage == "eval")
    for artifact in template.get("inputs", {}).get("artifacts", []):
        assert artifact["path"].startswith("/tmp/inputs/")
        assert f"={artifact['path']}" in " ".join(container["args"])
    for param in template["outputs"]["parameters"]:
        assert param["valueFrom"]["path"].startswith("/tmp/outputs/params/")
    assert template["retryStrategy"]["expression"] == "asInt(lastRetry.exitCode) == 75"
    env = {e["name"]: e for e in container["env"]}
    assert env["RUN_ID"]["value"] == "{{workflow.name}}"
    assert env["STAGE_ATTEMPT"]["value"] == "{{retries}}"
    shared = compiled["Workflow"]["spec"]["templateDefaults"]["container"]  # Argo merges it into every container
    env = {e["name"]: e for e in shared["env"]} | env
    for name in ("PG_USER", "PG_PASSWORD", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"):
        assert set(env[name]) == {"name", "valueFrom"} and "secretKeyRef" in env[name]["valueFrom"]
    for name in ("PG_HOST", "MINIO_ENDPOINT", "MLFLOW_TRACKING_URI"):
        assert env[name]["valueFrom"]["configMapKeyRef"] == {"name": "cybersec-mlops-config", "key": name}
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]


def test_the_shared_environment_is_written_once_per_manifest(compiled: dict[str, dict[str, Any]]) -> None:
    """Settings and secrets appear in templateDefaults only; each stage adds only its run and attempt."""
    for kind in ("Workflow", "CronWorkflow:scoring"):
        spec = compiled[kind]["spec"].get("workflowSpec") or compiled[kind]["spec"]
        shared = spec["templateDefaults"]["container"]
        assert [e["name"] for e in shared["env"]] == [
            *("PG_HOST", "PG_PORT", "PG_DATABASE", "MINIO_ENDPOINT", "MINIO_SECURE", "MLFLOW_TRACKING_URI"),
            *("PG_USER", "PG_PASSWORD", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"),
        ]
        assert set(spec["templateDefaults"]) == {"container"}, "a retryStrategy or volume there would reach the dag"
        for template in spec["templates"]:
            if "container" in template:
                assert [e["name"] for e in template["container"]["env"]] == ["RUN_ID", "STAGE_ATTEMPT"]


@pytest.mark.parametrize("stage", list(EXPECTED_KEYS))
def test_retries_have_no_hidden_deadline(compiled: dict[str, dict[str, Any]], stage: str) -> None:
    """backoff.maxDuration would kill every retry pod at first start + maxDuration (Argo's ARGO_DEADLINE)."""
    retry = templates(compiled["Workflow"])[stage]["retryStrategy"]
    assert retry["limit"] == "3" and retry["backoff"] == {"duration": "30s", "factor": "2"}
    assert "maxDuration" not in retry["backoff"]  # the workflow's activeDeadlineSeconds bounds retries instead


def test_output_parameters_match_the_stage_contract(compiled: dict[str, dict[str, Any]]) -> None:
    """The files each stage writes (DESIGN/BRIEF params lists) are the ones Argo reads."""
    expected = {
        "ingest": {"rows", "rejected", "sha256"},
        "silver": {"rows", "train_rows", "holdout_rows", "sha256", "schema_hash"},
        "train": {"mlflow_run_id", "model_version", "threshold", "sha256", "train_rows"},
        "eval": {"verdict", "pr_auc", "roc_auc", "precision", "recall", "fpr", "alert_rate", "promoted"},
    }
    for stage, files in expected.items():
        params = templates(compiled["Workflow"])[stage]["outputs"]["parameters"]
        assert {p["valueFrom"]["path"].rpartition("/")[2] for p in params} == files


def test_image_parameters_default_to_the_bake_file(compiled: dict[str, dict[str, Any]]) -> None:
    bake = load_bake()
    params = {p["name"]: p["value"] for p in compiled["Workflow"]["spec"]["arguments"]["parameters"]}
    assert params["image-registry"] == bake.registry
    assert params["image-tag"] == bake.tag != "latest"
    assert params["source"] == "synthetic://?rows=100000&seed=7&attack_share=0.02&days=4"
    assert compiled["Workflow"]["metadata"]["labels"]["app.kubernetes.io/version"] == bake.tag


def test_every_template_option_is_a_workflow_parameter(compiled: dict[str, dict[str, Any]]) -> None:
    names = {p["name"] for p in compiled["Workflow"]["spec"]["arguments"]["parameters"]}
    for spec in STAGE_SPECS:
        for _, param in spec.options:
            assert param in names, f"{spec.name} option {param} is not a workflow parameter"


def test_workflow_level_settings(compiled: dict[str, dict[str, Any]]) -> None:
    spec = compiled["Workflow"]["spec"]
    assert spec["serviceAccountName"] == "cybersec-mlops-workflow"
    assert spec["artifactRepositoryRef"] == {"configMap": "artifact-repositories", "key": "minio"}
    assert spec["podGC"]["strategy"] == "OnPodSuccess"
    assert spec["ttlStrategy"]["secondsAfterFailure"] >= spec["ttlStrategy"]["secondsAfterSuccess"]
    assert spec["activeDeadlineSeconds"] == 14400
    assert "workflows.argoproj.io/description" in compiled["Workflow"]["metadata"]["annotations"]


def test_scoring_cron_workflow(compiled: dict[str, dict[str, Any]]) -> None:
    """Daily, one at a time, a missed start still runs within an hour; champion ∥ ingest → silver → score."""
    cron = compiled["CronWorkflow:scoring"]
    spec = cron["spec"]
    assert cron["metadata"]["name"] == "cybersec-mlops-scoring"
    assert (spec["schedules"], spec["timezone"], spec["concurrencyPolicy"]) == (["15 0 * * *"], "UTC", "Forbid")
    assert spec["startingDeadlineSeconds"] == 3600
    assert spec["successfulJobsHistoryLimit"] > 0 and spec["failedJobsHistoryLimit"] > 0
    wf = spec["workflowSpec"]
    tasks = {t["name"]: t for t in wf["templates"][0]["dag"]["tasks"]}
    assert {k: t.get("depends") for k, t in tasks.items()} == {
        "champion": None,
        "ingest": None,
        "silver": "ingest && champion",
        "score": "silver && champion",
    }
    templates = {t["name"]: t for t in wf["templates"][1:]}
    assert templates["champion"]["container"]["command"] == ["python", "-m", "stages.score"]
    assert "--resolve-only" in templates["champion"]["container"]["args"]
    assert "--mode=score" in templates["silver"]["container"]["args"]
    keys = {a["name"]: a["s3"]["key"] for a in templates["score"]["outputs"]["artifacts"]}
    assert keys == {
        name: f"score/{{{{workflow.name}}}}/{file}"
        for name, file in (
            ("alerts", "alerts.parquet"),
            ("incidents", "incidents.parquet"),
            ("alerts-html", "alerts.html"),
            ("drift", "drift.json"),
        )
    }
    assert "drifted" in {p["name"] for p in templates["score"]["outputs"]["parameters"]}
    params = {p["name"]: p["value"] for p in wf["arguments"]["parameters"]}
    assert params["window"] == "previous-day" and params["source"].startswith("s3://cybersec-mlops/landing/")


def test_retrain_cron_workflow_references_the_training_template(compiled: dict[str, dict[str, Any]]) -> None:
    spec = compiled["CronWorkflow:retrain"]["spec"]
    assert spec["concurrencyPolicy"] == "Forbid" and spec["schedules"] == ["0 3 * * 0"]
    wf = spec["workflowSpec"]
    assert wf["workflowTemplateRef"] == {"name": compiled["WorkflowTemplate"]["metadata"]["name"]}
    assert "templates" not in wf  # a reference, not a copy
    template_params = {p["name"] for p in compiled["WorkflowTemplate"]["spec"]["arguments"]["parameters"]}
    assert {p["name"]: p["value"] for p in wf["arguments"]["parameters"]}["window"] == "last-7d"
    assert {p["name"] for p in wf["arguments"]["parameters"]} <= template_params


def test_partitioned_template_fans_out_over_the_list_step(compiled: dict[str, dict[str, Any]]) -> None:
    """list → ingest and silver, one pod per item (ingest memoized on the item's digest) → train, eval on the parts."""
    spec = compiled["WorkflowTemplate:partitioned"]["spec"]
    assert spec["parallelism"] >= 1
    tasks = {t["name"]: t for t in spec["templates"][0]["dag"]["tasks"]}
    templates = {t["name"]: t for t in spec["templates"]}
    assert list(tasks) == ["partitions", "ingest", "silver", "train", "eval-part", "eval"]
    listing = "{{tasks.partitions.outputs.parameters.partitions}}"
    assert tasks["ingest"]["withParam"] == listing and tasks["silver"]["withParam"] == listing
    assert tasks["eval-part"]["withParam"] == "{{tasks.partitions.outputs.parameters.holdout}}"
    assert "withParam" not in tasks["train"] and "withParam" not in tasks["eval"]
    # every pod of a fan-out is audited on its own row, named by its item's k
    for name in ("ingest", "silver", "eval-part"):
        assert {"name": "k", "value": "{{item.k}}"} in tasks[name]["arguments"]["parameters"]
        assert {"name": "STAGE_PART", "value": "{{inputs.parameters.k}}"} in templates[name]["container"]["env"]
    assert not any(e["name"] == "STAGE_PART" for e in templates["train"]["container"]["env"])
    assert templates["partitions"]["container"]["command"] == ["python", "-m", "stages.ingest.partitions"]

    ingest = templates["ingest"]
    assert ingest["memoize"]["key"] == "ingest-{{inputs.parameters.digest}}"
    assert ingest["memoize"]["cache"]["configMap"]["name"]
    # no retryStrategy (Argo v4.0 hangs the DAG on a cache hit of a retried template), so no {{retries}}
    assert "retryStrategy" not in ingest
    assert {"name": "STAGE_ATTEMPT", "value": "0"} in ingest["container"]["env"]
    flows = next(a for a in ingest["outputs"]["artifacts"] if a["name"] == "flows")
    assert flows["s3"]["key"] == "{{inputs.parameters.raw-key}}"  # content-addressed: shared by memoized re-runs
    args = {p["name"]: p["value"] for p in tasks["ingest"]["arguments"]["parameters"]}
    assert args["source"] == "{{item.source}}" and args["digest"] == "{{item.digest}}"

    silver = templates["silver"]
    inputs = {a["name"]: a for a in silver["inputs"]["artifacts"]}
    assert inputs["flows"]["s3"]["key"] == "{{inputs.parameters.raw-key}}"
    assert inputs["lookback"]["s3"]["key"] == "{{inputs.parameters.prev-key}}" and inputs["lookback"]["optional"]
    keys = [a["s3"]["key"] for a in silver["outputs"]["artifacts"]]
    assert keys == [
        "silver/{{workflow.name}}/part={{inputs.parameters.k}}/features.parquet",
        "silver/{{workflow.name}}/part={{inputs.parameters.k}}/manifest.json",
    ]
    # train and eval stage every part as one directory (the fan-in), passed as --features and --manifest
    for stage in ("train", "eval"):
        staged = [a for a in templates[stage]["inputs"]["artifacts"] if a["name"] == "silver"]
        assert [a["s3"]["key"] for a in staged] == ["silver/{{workflow.name}}"]
        args = templates[stage]["container"]["args"]
        assert "--features=/tmp/inputs/silver" in args and "--manifest=/tmp/inputs/silver" in args
    # eval-part scores one holdout part each; eval stages their scores as one directory and only merges
    part = templates["eval-part"]
    assert part["container"]["command"] == ["python", "-m", "stages.eval.part"]
    assert [a["s3"]["key"] for a in part["inputs"]["artifacts"] if "s3" in a] == [
        "silver/{{workflow.name}}/part={{inputs.parameters.k}}/features.parquet",
        "silver/{{workflow.name}}/part={{inputs.parameters.k}}/manifest.json",
    ]
    assert [a["s3"]["key"] for a in part["outputs"]["artifacts"]] == [
        "eval/{{workflow.name}}/parts/part={{inputs.parameters.k}}/scores.parquet"
    ]
    assert tasks["eval"]["depends"] == "eval-part"
    scores = next(a for a in templates["eval"]["inputs"]["artifacts"] if a["name"] == "scores")
    assert scores["s3"]["key"] == "eval/{{workflow.name}}/parts"
    assert "--scores=/tmp/inputs/scores" in templates["eval"]["container"]["args"]
