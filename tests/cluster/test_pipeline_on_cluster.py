"""The pipeline on a real Kubernetes + Argo Workflows + MinIO: installed with
``kubectl apply -k k8s/``, run by the Job, watched with the argo CLI.

Four workflow runs cover the scenarios (each takes a minute or two on 2 cores):
success through the Job, a failed quality gate through the Job, a transient PostgreSQL
outage through ``argo submit --from workflowtemplate/...`` against the Argo Server, and
bad input through the Hera submission (``python -m workflows submit``) from the host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import kube

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

STAGES = ("ingest", "silver", "train", "eval")
OUTCOMES: dict[str, tuple[str, dict[str, list[int]]]] = {}
"""Scenario → (workflow phase, each stage's attempt exit codes) seen on the cluster, for the parity test."""
# Small runs: the cluster's pods share 2 cores with the control plane.
SOURCE = "synthetic://?rows=40000&seed=11&attack_share=0.03&days=4"


class Follower:
    """`argo watch` and `argo logs --follow` on the next new workflow, as a user watches one."""

    def __init__(self) -> None:
        self.before = set(kube.kubectl("get", "workflows", "-o", "name").split())
        self.watch = ""
        self.logs = ""
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.thread.start()

    def _follow(self) -> None:
        deadline = time.monotonic() + 300
        name = ""
        while not name and time.monotonic() < deadline:
            new = set(kube.kubectl("get", "workflows", "-o", "name").split()) - self.before
            name = sorted(new)[0].split("/")[-1] if new else ""
            time.sleep(1)
        if not name:
            return
        logs = subprocess.Popen(
            [f"{kube.settings()['ARGO_BIN']}/argo", "-n", kube.NAMESPACE, "logs", name, "--follow"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=kube.env(),
        )
        self.watch = kube.argo("watch", name, timeout=1200, check=False).stdout
        try:
            self.logs = logs.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            logs.kill()
            self.logs = logs.communicate()[0]

    def join(self) -> None:
        self.thread.join(timeout=120)


@pytest.fixture(scope="module")
def success(cluster: dict[str, str]) -> Iterator[tuple[kube.JobRun, Follower]]:
    follower = Follower()
    run = kube.run_job("-p", f"source={SOURCE}")
    follower.join()
    yield run, follower


def _wf_exit_codes(wf: dict[str, Any]) -> dict[str, list[int]]:
    """Exit codes of each stage's attempts, in order."""
    codes: dict[str, list[int]] = {}
    for node in kube.pod_nodes(wf):
        stage = node.get("templateName", "")
        code = node.get("outputs", {}).get("exitCode")
        if code is not None:
            codes.setdefault(stage, []).append(int(code))
    return codes


def test_job_completes_after_the_four_stage_pods_ran_our_images(success: tuple[kube.JobRun, Follower]) -> None:
    run, _ = success
    assert run.condition == "Complete", run.logs[-2000:]
    assert run.exit_code == 0
    wf = kube.workflow(run.workflow)
    OUTCOMES["success"] = (wf["status"]["phase"], _wf_exit_codes(wf))
    assert wf["status"]["phase"] == "Succeeded"
    assert _wf_exit_codes(wf) == {stage: [0] for stage in STAGES}
    spec = wf["status"]["storedWorkflowTemplateSpec"]
    images = {t["name"]: t["container"]["image"] for t in spec["templates"] if "container" in t}
    # The template's defaults, then what the Job passed: the images the pods were given.
    params = {p["name"]: p.get("value") for p in spec["arguments"]["parameters"]}
    params.update({p["name"]: p.get("value") for p in wf["spec"].get("arguments", {}).get("parameters", [])})
    registry, tag = "{{workflow.parameters.image-registry}}", "{{workflow.parameters.image-tag}}"
    for stage in STAGES:
        assert images[stage] == f"{registry}/cybersec-mlops-{stage}:{tag}"
        assert f"{params['image-registry']}/cybersec-mlops-{stage}:{params['image-tag']}" == kube.bake_image(stage)


def test_artifacts_audit_and_mlflow_run_exist(success: tuple[kube.JobRun, Follower]) -> None:
    run, _ = success
    wf = run.workflow
    expected = {
        f"raw/{wf}/flows.parquet",
        f"raw/{wf}/rejects.parquet",
        f"silver/{wf}/features.parquet",
        f"silver/{wf}/manifest.json",
        f"models/{wf}/model.skops",
        f"models/{wf}/model-card.json",
        f"eval/{wf}/metrics.json",
        f"eval/{wf}/report.html",
    }
    present = set(kube.keys("raw/") + kube.keys("silver/") + kube.keys("models/") + kube.keys("eval/"))
    assert expected <= present, sorted(expected - present)
    rows = kube.audit("SELECT stage, status FROM stage_attempts WHERE run_id = %s ORDER BY started_at", wf)
    assert [(s, st) for s, st in rows if st == "SUCCEEDED"] == [(s, "SUCCEEDED") for s in STAGES]
    card = json.loads(kube.s3().get_object(Bucket=kube.BUCKET, Key=f"models/{wf}/model-card.json")["Body"].read())
    run_id = card["mlflow"]["run_id"]
    url = f"http://{kube.settings()['NODE_IP']}:5000/api/2.0/mlflow/runs/get?run_id={run_id}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        mlflow_run = json.load(resp)["run"]
    assert mlflow_run["info"]["status"] == "FINISHED"


def test_argo_cli_shows_the_four_steps_and_their_outputs(success: tuple[kube.JobRun, Follower]) -> None:
    run, follower = success
    listed = kube.argo("list").stdout
    assert run.workflow in listed and "Succeeded" in listed
    got = kube.argo("get", run.workflow).stdout
    for stage in STAGES:
        assert stage in got
    assert "Succeeded" in got
    got_json = json.loads(kube.argo("get", run.workflow, "-o", "json").stdout)
    params = {
        (n["displayName"], p["name"])
        for n in got_json["status"]["nodes"].values()
        for p in n.get("outputs", {}).get("parameters", [])
    }
    assert {stage for stage, _ in params} >= set(STAGES), params
    assert "Succeeded" in follower.watch, follower.watch[-2000:]
    for stage in STAGES:
        assert f"stages.{stage}" in follower.logs or f'"stage": "{stage}"' in follower.logs, follower.logs[-3000:]


def test_gate_failure_fails_the_workflow_and_the_job_with_exit_3(cluster: dict[str, str]) -> None:
    run = kube.run_job("-p", f"source={SOURCE}", "-p", "gate-min-pr-auc=0.9999")
    assert run.condition == "Failed", run.logs[-2000:]
    assert run.exit_code == 3, run.logs[-2000:]
    wf = kube.workflow(run.workflow)
    OUTCOMES["gate failure"] = (wf["status"]["phase"], _wf_exit_codes(wf))
    assert wf["status"]["phase"] == "Failed"
    assert _wf_exit_codes(wf)["eval"] == [3]
    assert {f"eval/{run.workflow}/metrics.json", f"eval/{run.workflow}/report.html"} <= set(
        kube.keys(f"eval/{run.workflow}/")
    )
    # The failed eval pod is kept (podGC OnPodSuccess): the pull secret the ServiceAccount
    # names reached it without any edit of the workflow.
    pods = kube.kubectl_json("get", "pods", "-l", f"workflows.argoproj.io/workflow={run.workflow}")["items"]
    assert pods
    for pod in pods:
        assert {"name": "cybersec-mlops-registry"} in pod["spec"].get("imagePullSecrets", [])
    job_pod = kube.kubectl_json("get", "pods", "-l", f"job-name={kube.JOB}")["items"][-1]
    assert {"name": "cybersec-mlops-registry"} in job_pod["spec"].get("imagePullSecrets", [])


def test_daily_half_cronworkflows_score_with_the_champion_and_retrain(
    success: tuple[kube.JobRun, Follower],
) -> None:
    """Both CronWorkflows are installed by `kubectl apply -k k8s/`; one run of each, as
    `argo submit --from cronwf/...` starts it: scoring a later day with the champion the
    successful run promoted, and retraining through the WorkflowTemplate it references."""
    crons = kube.argo("cron", "list").stdout
    assert "cybersec-mlops-scoring" in crons and "cybersec-mlops-retrain" in crons, crons
    later_day = "synthetic://?rows=20000&seed=99&attack_share=0.03&days=1&start=2026-02-01T00:00:00Z"
    scoring = kube.argo(
        "submit",
        "--from",
        "cronwf/cybersec-mlops-scoring",
        "-p",
        f"source={later_day}",
        "-p",
        "window=all",
        "-o",
        "name",
    ).stdout.strip()
    retrain = kube.argo(
        "submit",
        "--from",
        "cronwf/cybersec-mlops-retrain",
        "-p",
        f"source={SOURCE}",
        "-p",
        "window=all",
        "-o",
        "name",
    ).stdout.strip()
    wf = kube.wait_workflow(scoring)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    keys = set(kube.keys(f"score/{scoring}/"))
    assert {
        f"score/{scoring}/{name}" for name in ("alerts.parquet", "incidents.parquet", "alerts.html", "drift.json")
    } <= keys
    incidents = kube.audit("SELECT count(*) FROM incidents WHERE run_id = %s", scoring)[0][0]
    assert incidents > 0
    wf = kube.wait_workflow(retrain)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    assert wf["spec"]["workflowTemplateRef"]["name"] == "cybersec-mlops-pipeline"
    rows = kube.audit("SELECT stage FROM stage_attempts WHERE run_id = %s AND status = 'SUCCEEDED'", retrain)
    assert sorted(r[0] for r in rows) == sorted(STAGES)


def _server_env(cluster: dict[str, str]) -> dict[str, str]:
    """The Argo Server at its fixed Service address, its CA, and the submitter's token."""
    token = kube.kubectl("create", "token", "cybersec-mlops-submitter", "--duration", "1h").strip()
    state = Path(cluster["CLUSTER_STATE"])
    return {
        **kube.env(),
        "ARGO_SERVER": "10.96.0.20:2746",
        # The argo CLI wants the scheme in ARGO_TOKEN; the submitter takes either form.
        "ARGO_TOKEN": f"Bearer {token}",
        "ARGO_NAMESPACE": kube.NAMESPACE,
        "ARGO_CA_FILE": str(state / "pki" / "ca.crt"),
        # The argo CLI (Go) takes its trust roots from SSL_CERT_FILE.
        "SSL_CERT_FILE": str(state / "pki" / "ca.crt"),
    }


def test_postgres_outage_is_retried_by_argo_and_the_workflow_succeeds(cluster: dict[str, str]) -> None:
    env = _server_env(cluster)
    proc = kube.run(
        [
            f"{cluster['ARGO_BIN']}/argo",
            "submit",
            "--from",
            "workflowtemplate/cybersec-mlops-pipeline",
            "-p",
            f"source={SOURCE}",
            "-o",
            "name",
        ],
        env=env,
    )
    name = proc.stdout.strip()

    # Take PostgreSQL away as silver starts and bring it back once silver's first attempt
    # has given up (its own retries take about 8 s): Argo's backoff (30 s) then retries it.
    def silver_attempts() -> list[dict[str, Any]]:
        nodes = kube.workflow(name).get("status", {}).get("nodes", {}).values()
        return [n for n in nodes if n.get("templateName") == "silver" and n.get("type") == "Pod"]

    hs = str(kube.SCRIPTS / "host-services.sh")
    deadline = time.monotonic() + 600
    while not silver_attempts() and time.monotonic() < deadline:
        time.sleep(0.5)
    subprocess.run([hs, "pg-stop"], check=True, timeout=60)
    try:
        while time.monotonic() < deadline and not any(n.get("phase") in ("Failed", "Error") for n in silver_attempts()):
            time.sleep(1)
    finally:
        subprocess.run([hs, "pg-start"], check=True, timeout=60)
    wf = kube.wait_workflow(name)
    codes = _wf_exit_codes(wf)
    OUTCOMES["transient fault"] = (wf["status"]["phase"], codes)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    assert codes["silver"][0] == 75 and codes["silver"][-1] == 0, codes
    got = kube.argo("get", name).stdout
    assert "silver(0)" in got and "silver(1)" in got, got
    rows = kube.audit("SELECT status FROM stage_attempts WHERE run_id = %s AND stage = 'silver'", name)
    assert ("SUCCEEDED",) in rows


def test_hera_submission_from_the_host_with_bad_input_exits_2_without_retry(cluster: dict[str, str]) -> None:
    proc = kube.run(
        [
            sys.executable,
            "-m",
            "workflows",
            "--log-format",
            "json",
            "submit",
            "--wait",
            "--poll-interval",
            "2",
            "-p",
            "source=s3://cybersec-mlops/landing/does-not-exist.log",
        ],
        env=_server_env(cluster),
        timeout=900,
        check=False,
        cwd=kube.REPO,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    wf = kube.workflow(kube.newest_workflow())
    OUTCOMES["bad input"] = (wf["status"]["phase"], _wf_exit_codes(wf))
    assert wf["status"]["phase"] == "Failed"
    assert _wf_exit_codes(wf) == {"ingest": [2]}


def test_one_stage_debugged_alone_with_kubectl_run(cluster: dict[str, str]) -> None:
    """README "Debug one stage in the cluster": the ingest image against MinIO, nothing else."""
    kube.kubectl("delete", "pod", "ingest-debug", "--ignore-not-found", "--wait")
    key = f"debug/{os.getpid()}/flows.parquet"
    overrides = _debug_pod_overrides(
        "registry.local/cybersec-mlops-ingest:0.1.0",
        [
            "--source",
            "synthetic://?rows=2000&seed=3",
            "--output",
            f"s3://cybersec-mlops/{key}",
            "--rejects",
            f"s3://cybersec-mlops/debug/{os.getpid()}/rejects.parquet",
        ],
    )
    out = kube.kubectl(
        "run",
        "ingest-debug",
        "--restart=Never",
        "--image=registry.local/cybersec-mlops-ingest:0.1.0",
        f"--overrides={json.dumps(overrides)}",
        "--attach",
        "--rm",
        "--quiet",
        timeout=300,
    )
    assert key in kube.keys(f"debug/{os.getpid()}/"), out[-2000:]
    rows = kube.audit("SELECT stage, status FROM stage_attempts WHERE run_id = %s", f"debug-{os.getpid()}")
    assert rows == [("ingest", "SUCCEEDED")]


def _debug_pod_overrides(image: str, args: list[str]) -> dict[str, Any]:
    secret = {
        "MINIO_ACCESS_KEY": ("cybersec-mlops-minio", "accesskey"),
        "MINIO_SECRET_KEY": ("cybersec-mlops-minio", "secretkey"),
        "PG_USER": ("cybersec-mlops-postgres", "username"),
        "PG_PASSWORD": ("cybersec-mlops-postgres", "password"),
    }
    return {
        "spec": {
            "containers": [
                {
                    "name": "ingest-debug",
                    "image": image,
                    "args": args,
                    "envFrom": [{"configMapRef": {"name": "cybersec-mlops-config"}}],
                    "env": [{"name": "RUN_ID", "value": f"debug-{os.getpid()}"}]
                    + [
                        {"name": k, "valueFrom": {"secretKeyRef": {"name": n, "key": key}}}
                        for k, (n, key) in secret.items()
                    ],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ]
        }
    }


def _shape(codes: dict[str, list[int]]) -> list[list[int]]:
    """Each stage's attempt exit codes, stage names dropped: the outage hits silver on the
    cluster and ingest locally (the local run cannot time it to a stage start); what must
    agree is that one stage ran twice (75, then 0) and every other stage once."""
    return sorted(codes.values())


def test_parity_with_the_local_executor(cluster: dict[str, str], tmp_path: Path, postgres: dict[str, str]) -> None:
    """The same scenarios through `python -m workflows run-local` end in the same phases and exit codes."""
    from tests.e2e.test_pipeline_local import PG_CONNECT_ATTEMPTS, base_env, run_local
    from tests.faults.proxy import FaultProxy
    from workflows.local.demo import prepare_mlflow

    # A store of its own: registering models in the session's shared MLflow server would
    # move the version numbers other tiers expect.
    mlflow_store = prepare_mlflow(tmp_path / "mlflow")

    missing = set(("success", "gate failure", "transient fault", "bad input")) - OUTCOMES.keys()
    if missing:
        pytest.fail(f"the cluster scenarios {sorted(missing)} did not run in this session", pytrace=False)
    scenarios = {
        "success": [],
        "gate failure": ["-p", "gate-min-pr-auc=0.9999"],
        "transient fault": [],
        "bad input": ["-p", "source=/nonexistent/landing/conn.log"],
    }
    table = ["| scenario | cluster | local executor |", "|---|---|---|"]
    mismatches = []
    for scenario, args in scenarios.items():
        with FaultProxy(("127.0.0.1", int(postgres["PG_PORT"]))) as proxy:
            if scenario == "transient fault":
                proxy.reset_next(PG_CONNECT_ATTEMPTS)
            env = base_env(postgres, proxy.port, mlflow_store)
            run = run_local(tmp_path / scenario.replace(" ", "-"), env, "-p", f"source={SOURCE}", *args)
        local_codes = {
            c["displayName"]: [a["exitCode"] for a in c.get("children", []) if a.get("exitCode") is not None]
            for c in run.status["root"]["children"]
        }
        local = (run.status["phase"], {k: v for k, v in local_codes.items() if v})
        cluster_outcome = OUTCOMES[scenario]
        table.append(f"| {scenario} | {cluster_outcome[0]} {cluster_outcome[1]} | {local[0]} {local[1]} |")
        if (cluster_outcome[0], _shape(cluster_outcome[1])) != (local[0], _shape(local[1])):
            mismatches.append(scenario)
    report = "\n".join(table)
    (Path(cluster["CLUSTER_STATE"]) / "parity.md").write_text(report + "\n")
    print(report)
    assert not mismatches, f"cluster and local executor differ in {mismatches}:\n{report}"
