"""Each stage image runs its stage on real inputs mounted from the host, chained like the DAG.

ingest (synthetic source) → silver → train → eval, each in its own container with the
pod's constraints: read-only root filesystem with a tmpfs on /tmp, uid 10001, all
capabilities dropped, no-new-privileges. The host directory /data is the only writable
mount. Audit goes to the real PostgreSQL of the test session and MLflow to a real
``mlflow server``, both reached over --network host as pods reach their services.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.images.conftest import BuiltImage

pytestmark = pytest.mark.images

RUN_ID = "images-chain"
POD_OPTIONS = (
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--network",
    "host",
)
PERMISSIVE_GATE = (
    "--gate-min-pr-auc",
    "0",
    "--gate-min-recall",
    "0",
    "--gate-max-fpr",
    "1",
    "--gate-max-alert-rate",
    "1",
    "--gate-max-psi",
    "1000",
)


@dataclass
class StageRun:
    proc: subprocess.CompletedProcess[str]
    data: Path

    def params(self, stage: str) -> dict[str, str]:
        folder = self.data / "params" / stage
        return {p.name: p.read_text() for p in folder.iterdir()} if folder.exists() else {}


def run_container(
    image: str,
    args: list[str],
    data: Path,
    env: dict[str, str],
    options: tuple[str, ...] = POD_OPTIONS,
    timeout: int = 600,
) -> subprocess.CompletedProcess[str]:
    cmd = ["docker", "run", "--rm", *options, "-v", f"{data}:/data"]
    for key, value in sorted(env.items()):
        cmd += ["-e", f"{key}={value}"]
    proc = subprocess.run([*cmd, image, *args], capture_output=True, text=True, timeout=timeout)
    return proc


def shared_dir(path: Path, *subdirs: str) -> Path:
    """A host directory the container's uid 10001 can write into (like an fsGroup emptyDir)."""
    for sub in ("", *subdirs):
        (path / sub).mkdir(parents=True, exist_ok=True)
        (path / sub).chmod(0o777)
    return path


def assert_ok(run: StageRun, stage: str) -> None:
    assert run.proc.returncode == 0, f"{stage} exited {run.proc.returncode}:\n{run.proc.stderr[-4000:]}"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_dir(
        tmp_path_factory.mktemp("stage-data"),
        "raw",
        "silver",
        "models",
        "eval",
        "params/ingest",
        "params/silver",
        "params/train",
        "params/eval",
    )


@pytest.fixture(scope="module")
def base_env(postgres: dict[str, str]) -> dict[str, str]:
    return {"RUN_ID": RUN_ID, **postgres}


@pytest.fixture(scope="module")
def ingest_run(images: dict[str, BuiltImage], data: Path, base_env: dict[str, str]) -> StageRun:
    args = [
        "--source",
        "synthetic://?rows=4000&seed=7&attack_share=0.05&days=1",
        "--output",
        "/data/raw/flows.parquet",
        "--rejects",
        "/data/raw/rejects.parquet",
        "--params-dir",
        "/data/params/ingest",
        "--log-format",
        "json",
    ]
    return StageRun(run_container(images["ingest"].tag, args, data, base_env), data)


@pytest.fixture(scope="module")
def silver_run(images: dict[str, BuiltImage], ingest_run: StageRun, base_env: dict[str, str]) -> StageRun:
    assert_ok(ingest_run, "ingest")
    args = [
        "--input",
        "/data/raw/flows.parquet",
        "--output",
        "/data/silver/features.parquet",
        "--manifest",
        "/data/silver/manifest.json",
        "--params-dir",
        "/data/params/silver",
    ]
    return StageRun(run_container(images["silver"].tag, args, ingest_run.data, base_env), ingest_run.data)


@pytest.fixture(scope="module")
def train_run(
    images: dict[str, BuiltImage], silver_run: StageRun, base_env: dict[str, str], mlflow_server: str
) -> StageRun:
    assert_ok(silver_run, "silver")
    args = [
        "--features",
        "/data/silver/features.parquet",
        "--manifest",
        "/data/silver/manifest.json",
        "--model-out",
        "/data/models/model.skops",
        "--card-out",
        "/data/models/model-card.json",
        "--n-estimators",
        "50",
        "--params-dir",
        "/data/params/train",
    ]
    env = {**base_env, "MLFLOW_TRACKING_URI": mlflow_server}
    return StageRun(run_container(images["train"].tag, args, silver_run.data, env), silver_run.data)


@pytest.fixture(scope="module")
def eval_run(
    images: dict[str, BuiltImage], train_run: StageRun, base_env: dict[str, str], mlflow_server: str
) -> StageRun:
    assert_ok(train_run, "train")
    args = [
        "--features",
        "/data/silver/features.parquet",
        "--manifest",
        "/data/silver/manifest.json",
        "--model",
        "/data/models/model.skops",
        "--card",
        "/data/models/model-card.json",
        "--metrics-out",
        "/data/eval/metrics.json",
        "--report-out",
        "/data/eval/report.html",
        "--params-dir",
        "/data/params/eval",
        *PERMISSIVE_GATE,
    ]
    env = {**base_env, "MLFLOW_TRACKING_URI": mlflow_server}
    return StageRun(run_container(images["eval"].tag, args, train_run.data, env), train_run.data)


def test_ingest_container_writes_raw_parquet_and_params(ingest_run: StageRun) -> None:
    import pyarrow.parquet as pq

    from stages.common.schema import FLOW_SCHEMA

    assert_ok(ingest_run, "ingest")
    table = pq.read_table(ingest_run.data / "raw" / "flows.parquet")
    assert table.schema.remove_metadata().equals(FLOW_SCHEMA.remove_metadata())
    params = ingest_run.params("ingest")
    assert int(params["rows"]) == table.num_rows > 3000
    assert params["rejected"] == "0"
    assert len(params["sha256"]) == 64
    assert (ingest_run.data / "raw" / "rejects.parquet").exists()
    # JSON log lines on stderr (not a TTY), with the run id
    lines = [json.loads(line) for line in ingest_run.proc.stderr.splitlines() if line.startswith("{")]
    assert lines and all(line.get("run_id") == RUN_ID for line in lines)


def test_silver_container_writes_features_and_manifest(silver_run: StageRun) -> None:
    import pyarrow.parquet as pq

    assert_ok(silver_run, "silver")
    manifest = json.loads((silver_run.data / "silver" / "manifest.json").read_text())
    table = pq.read_table(silver_run.data / "silver" / "features.parquet")
    assert manifest["rows"] == table.num_rows == int(silver_run.params("ingest")["rows"])
    assert set(manifest["features"]) <= set(table.column_names)
    params = silver_run.params("silver")
    assert int(params["train_rows"]) + int(params["holdout_rows"]) == table.num_rows
    assert params["schema_hash"] == manifest["schema_hash"]


def test_train_container_writes_model_and_registers_it_in_mlflow(train_run: StageRun, mlflow_server: str) -> None:
    assert_ok(train_run, "train")
    card = json.loads((train_run.data / "models" / "model-card.json").read_text())
    assert card["model_type"] == "iforest" and card["run_id"] == RUN_ID
    assert card["mlflow"]["tracking_uri_set"] is True and card["mlflow"]["run_id"]
    params = train_run.params("train")
    assert params["mlflow_run_id"] == card["mlflow"]["run_id"]
    assert params["model_version"] == card["mlflow"]["model_version"] == "1"
    assert (train_run.data / "models" / "model.skops").stat().st_size > 1000

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    assert client.get_run(params["mlflow_run_id"]).info.status == "FINISHED"


def test_eval_container_writes_metrics_report_and_promotes(eval_run: StageRun, mlflow_server: str) -> None:
    assert_ok(eval_run, "eval")
    metrics = json.loads((eval_run.data / "eval" / "metrics.json").read_text())
    assert metrics["gate"]["verdict"] == "passed" and metrics["has_labels"] is True
    assert 0.0 <= metrics["pr_auc"] <= 1.0
    report = (eval_run.data / "eval" / "report.html").read_text()
    assert "<img" in report or "<svg" in report  # plots drawn in the container
    params = eval_run.params("eval")
    assert params["verdict"] == "passed" and params["promoted"] == "true"

    from mlflow import MlflowClient

    champion = MlflowClient(tracking_uri=mlflow_server).get_model_version_by_alias(
        "cybersec-anomaly-detector", "champion"
    )
    assert champion.version == eval_run.params("train")["model_version"]


def test_every_stage_recorded_its_attempt_in_the_audit(eval_run: StageRun, audit_db: object) -> None:
    assert_ok(eval_run, "eval")
    with audit_db.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(
            "SELECT stage, status, exit_code FROM stage_attempts WHERE run_id = %s ORDER BY started_at", (RUN_ID,)
        )
        attempts = cur.fetchall()
        cur.execute("SELECT producer, consumer FROM lineage WHERE run_id = %s", (RUN_ID,))
        lineage = set(cur.fetchall())
    assert attempts == [(s, "SUCCEEDED", 0) for s in ("ingest", "silver", "train", "eval")]
    assert {("ingest", "silver"), ("silver", "train"), ("silver", "eval"), ("train", "eval")} <= lineage


def test_bad_input_exits_2_naming_the_file(images: dict[str, BuiltImage], tmp_path: Path) -> None:
    data = shared_dir(tmp_path / "bad", "raw")
    (data / "raw" / "flows.parquet").write_text("this is not parquet\n")
    proc = run_container(
        images["silver"].tag,
        ["--input", "/data/raw/flows.parquet", "--output", "/data/raw/f.parquet", "--manifest", "/data/raw/m.json"],
        data,
        {},
    )
    assert proc.returncode == 2, proc.stderr
    assert "/data/raw/flows.parquet" in proc.stderr
    assert not (data / "raw" / "f.parquet").exists()


ZEEK_CONN = """#separator \\x09
#set_separator\t,
#empty_field\t(empty)
#unset_field\t-
#path\tconn
#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents
#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]
1700000000.000001\tC1\t10.0.0.1\t50000\t10.0.0.2\t443\ttcp\tssl\t1.5\t1200\t5400\tSF\t-\t-\t0\tShADadFf\t10\t1720\t12\t6040\t-
1700000001.000002\tC2\t10.0.0.1\t50001\t10.0.0.3\t53\tudp\tdns\t0.01\t40\t120\tSF\t-\t-\t0\tDd\t1\t68\t1\t148\t-
1700000002.000003\tC3\t10.0.0.4\t50002\t10.0.0.2\t22\ttcp\t-\t-\t-\t-\tS0\t-\t-\t0\tS\t1\t60\t0\t0\t-
notatime\tC4\t10.0.0.9\t50003\t10.0.0.2\t80\ttcp\thttp\t0.2\t100\t200\tSF\t-\t-\t0\tShADadFf\t4\t300\t4\t400\t-
#close\t2023-11-14-22-13-24
"""


def test_ingest_reads_a_read_only_mounted_zeek_log_and_uploads_to_s3(
    images: dict[str, BuiltImage], tmp_path: Path, s3_server: dict[str, str]
) -> None:
    """A host file mounted read-only in, results out to the S3 endpoint (boto3 inside the image)."""
    import boto3

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "conn.log").write_text(ZEEK_CONN)
    params = shared_dir(tmp_path / "out", "params")
    options = (*POD_OPTIONS, "-v", f"{logs}:/logs:ro")
    args = [
        "--source",
        "/logs/conn.log",
        "--output",
        "s3://cybersec-mlops/raw/images-s3/flows.parquet",
        "--rejects",
        "s3://cybersec-mlops/raw/images-s3/rejects.parquet",
        "--params-dir",
        "/data/params",
        "--max-reject-fraction",  # 1 of 4 rows is bad on purpose
        "0.5",
    ]
    proc = run_container(images["ingest"].tag, args, params, {"RUN_ID": "images-s3", **s3_server}, options=options)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (params / "params" / "rows").read_text() == "3"
    assert (params / "params" / "rejected").read_text() == "1"
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server["MINIO_ENDPOINT"],
        aws_access_key_id=s3_server["MINIO_ACCESS_KEY"],
        aws_secret_access_key=s3_server["MINIO_SECRET_KEY"],
        region_name="us-east-1",
    )
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="cybersec-mlops", Prefix="raw/images-s3/")["Contents"]}
    assert keys == {"raw/images-s3/flows.parquet", "raw/images-s3/rejects.parquet"}
