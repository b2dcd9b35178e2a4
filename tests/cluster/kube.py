"""The cluster tier's handles on the single-node cluster of scripts/cluster: kubectl and
the argo CLI built there, the Job, MinIO (through its Service's cluster IP, reachable from
the host) and the host's PostgreSQL. Everything a user would use, nothing mocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "cluster"
NAMESPACE = "cybersec-mlops"
JOB = "cybersec-mlops-submit"
BUCKET = "cybersec-mlops"


@cache
def settings() -> dict[str, str]:
    """The cluster's settings as scripts/cluster/lib.sh defines them (one source of truth)."""
    names = "CLUSTER_CACHE CLUSTER_STATE KUBECONFIG_ADMIN NODE_IP KUBERNETES_VERSION ARGO_VERSION"
    script = f"source {SCRIPTS / 'lib.sh'} >/dev/null; for n in {names}; do printf '%s=%s\\n' $n \"${{!n}}\"; done"
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    values["K8S_BIN"] = f"{values['CLUSTER_CACHE']}/kubernetes-{values['KUBERNETES_VERSION']}/bin"
    values["ARGO_BIN"] = f"{values['CLUSTER_CACHE']}/argo-{values['ARGO_VERSION']}/bin"
    return values


def bake_image(target: str) -> str:
    """The image docker-bake.hcl names for a target (what the cluster imported)."""
    from workflows.images import load_bake

    return load_bake().image(target)


def env() -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": settings()["KUBECONFIG_ADMIN"]}


def run(cmd: list[str], timeout: float = 120, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=kw.pop("env", env()), **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def kubectl(*args: str, timeout: float = 120, check: bool = True, stdin: str | None = None) -> str:
    cmd = [f"{settings()['K8S_BIN']}/kubectl", "-n", NAMESPACE, *args]
    return run(cmd, timeout=timeout, check=check, input=stdin).stdout


def kubectl_json(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json"))


def argo(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The argo CLI as a user with a kubeconfig runs it (kube mode, no Argo Server)."""
    return run([f"{settings()['ARGO_BIN']}/argo", "-n", NAMESPACE, *args], timeout=timeout, check=check)


def workflow(name: str) -> dict[str, Any]:
    return dict(kubectl_json("get", "workflow", name))


def wait_workflow(name: str, timeout: float = 900) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wf = workflow(name)
        if wf.get("status", {}).get("phase") in ("Succeeded", "Failed", "Error"):
            return wf
        time.sleep(3)
    raise AssertionError(f"workflow {name} not finished after {timeout}s: {workflow(name).get('status', {})}")


def pod_nodes(wf: dict[str, Any]) -> list[dict[str, Any]]:
    """The workflow's pod nodes (one per attempt), oldest first."""
    nodes = [n for n in wf["status"].get("nodes", {}).values() if n.get("type") == "Pod"]
    return sorted(nodes, key=lambda n: n.get("startedAt") or "")


@dataclass
class JobRun:
    """One run of the submitter Job: its final condition, the submitter's exit code, its workflow."""

    condition: str
    exit_code: int | None
    workflow: str
    logs: str


def run_job(*params: str, timeout: float = 1200) -> JobRun:
    """Apply k8s/ (the Job with ``-p`` params in its args, as the README says) and wait for the Job."""
    kubectl("delete", "job", JOB, "--ignore-not-found", "--wait", timeout=180)
    cmd = [str(SCRIPTS / "demo.sh"), *params]
    run(cmd, timeout=timeout, check=False)
    job = kubectl_json("get", "job", JOB)
    conditions = {c["type"]: c["status"] for c in job.get("status", {}).get("conditions", [])}
    condition = (
        "Complete" if conditions.get("Complete") == "True" else "Failed" if conditions.get("Failed") == "True" else "?"
    )
    pods = kubectl_json("get", "pods", "-l", f"job-name={JOB}")["items"]
    exit_code = None
    for status in pods[-1]["status"].get("containerStatuses", []) if pods else []:
        exit_code = status.get("state", {}).get("terminated", {}).get("exitCode")
    logs = kubectl("logs", f"job/{JOB}", check=False)
    return JobRun(condition, exit_code, newest_workflow(), logs)


def newest_workflow() -> str:
    items = kubectl_json("get", "workflows", "--sort-by", ".metadata.creationTimestamp")["items"]
    return str(items[-1]["metadata"]["name"]) if items else ""


@cache
def s3() -> Any:
    """A boto3 client of the cluster's MinIO, with the credentials the install made."""
    import boto3

    state = Path(settings()["CLUSTER_STATE"])
    ip = kubectl("-n", "minio", "get", "svc", "minio", "-o", "jsonpath={.spec.clusterIP}").strip()
    return boto3.client(
        "s3",
        endpoint_url=f"http://{ip}:9000",
        aws_access_key_id=(state / "secrets" / "minio-user").read_text().strip(),
        aws_secret_access_key=(state / "secrets" / "minio-password").read_text().strip(),
        region_name="us-east-1",
    )


def keys(prefix: str) -> list[str]:
    response = s3().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(obj["Key"] for obj in response.get("Contents", []))


def audit(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Query the host's PostgreSQL audit database (parameterised)."""
    import psycopg2

    state = Path(settings()["CLUSTER_STATE"])
    conn = psycopg2.connect(
        host=settings()["NODE_IP"],
        port=5432,
        user="mlops",
        password=(state / "secrets" / "pg-password").read_text().strip(),
        dbname="mlops_audit",
    )
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())
    finally:
        conn.close()
