"""The submitter against a local HTTP server speaking the Argo Server API paths it uses."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.workflows.argo_fake import (
    FakeArgo,
    Request,
    Response,
    echo_created,
    issue_certificate,
    node,
    workflow_status,
)
from workflows.__main__ import main
from workflows.local.services import free_port
from workflows.submit import SubmitExit

REPO = Path(__file__).resolve().parents[2]
NS = "mlops"
TOKEN = "test-token-4f1c9e7a"  # a fake token; the tests check it never reaches the output
CREATE = rf"/api/v1/workflows/{NS}"
GET = rf"/api/v1/workflows/{NS}/cybersec-mlops-[a-z0-9]{{5}}"
STOP = GET + "/stop"
FAST = ["--poll-interval", "0.01", "--backoff", "0.01"]

INGEST_OK = node("ingest", "Succeeded", params={"rows": "1000", "sha256": "ab12"}, started="1")
SILVER_OK = node("silver", "Succeeded", started="2")
TRAIN_OK = node("train", "Succeeded", params={"mlflow-run-id": "r1", "model-version": "3"}, started="3")
EVAL_OK = node("eval", "Succeeded", params={"verdict": "passed", "pr-auc": "0.91"}, started="4")
ALL_OK = (INGEST_OK, SILVER_OK, TRAIN_OK, EVAL_OK)


@pytest.fixture
def argo() -> Iterator[FakeArgo]:
    fake = FakeArgo().start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "ARGO_SERVER",
        "ARGO_TOKEN",
        "ARGO_NAMESPACE",
        "ARGO_SECURE",
        "ARGO_BASE_HREF",
        "ARGO_INSECURE_SKIP_VERIFY",
        "ARGO_CA_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARGO_TOKEN", TOKEN)
    monkeypatch.setenv("ARGO_NAMESPACE", NS)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """main() configures the root logger (to the captured stderr); put the previous handlers back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def submit(
    argo: FakeArgo, capsys: pytest.CaptureFixture[str], *args: str, token_file: Path | None = None
) -> tuple[int, str]:
    argv = ["--log-format", "text", "submit", "--server", argo.url, "--wait", *FAST, *args]
    if token_file is not None:
        argv += ["--token-file", str(token_file)]
    code = main(argv)
    out, err = capsys.readouterr()
    assert TOKEN not in out + err, "the token must never be logged"
    return code, out + err


def test_progression_pending_running_succeeded(argo: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    argo.on("POST", CREATE, echo_created)
    argo.on(
        "GET",
        GET,
        workflow_status(""),
        workflow_status("Pending"),
        workflow_status("Running", node("ingest", "Running")),
        workflow_status("Running", INGEST_OK, node("silver", "Running", started="2")),
        workflow_status("Succeeded", *ALL_OK),
    )
    code, log = submit(argo, capsys, "--from-template", "-p", "source=s3://landing/conn.log", "-p", "model=hgb")
    assert code == SubmitExit.SUCCEEDED == 0
    order = [
        "Pending (not yet picked up",
        ": Pending\n",
        "node ingest [Pod]: Running",
        "node ingest [Pod]: Succeeded rows=1000",
        "node silver [Pod]: Running",
        "node eval [Pod]: Succeeded verdict=passed pr-auc=0.91",
    ]
    positions = [log.index(text) for text in order]
    assert positions == sorted(positions), log
    assert log.count("node ingest [Pod]: Running") == 1, "a phase is logged once, when it changes"
    (post,) = argo.calls("POST")
    assert post.headers["Authorization"] == f"Bearer {TOKEN}"
    workflow = post.body["workflow"]
    assert post.body["namespace"] == NS == workflow["metadata"]["namespace"]
    assert workflow["spec"]["workflowTemplateRef"] == {"name": "cybersec-mlops-pipeline"}
    assert workflow["spec"]["arguments"]["parameters"] == [
        {"name": "source", "value": "s3://landing/conn.log"},
        {"name": "model", "value": "hgb"},
    ]
    assert log.rstrip().endswith(f"workflow {workflow['metadata']['name']} Succeeded")


def test_hera_built_workflow_carries_the_whole_spec(argo: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    argo.on("POST", CREATE, echo_created).on("GET", GET, workflow_status("Succeeded", *ALL_OK))
    code, _ = submit(argo, capsys, "-p", "image-tag=1.2.3")
    assert code == 0
    workflow = argo.calls("POST")[0].body["workflow"]
    assert workflow["metadata"]["name"].startswith("cybersec-mlops-") and "generateName" not in workflow["metadata"]
    assert [t["name"] for t in workflow["spec"]["templates"]] == ["pipeline", "ingest", "silver", "train", "eval"]
    params = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    assert params["image-tag"] == "1.2.3" and params["model"] == "iforest"


@pytest.mark.parametrize("from_template", [True, False])
def test_partitioned_submission_and_its_parallelism(
    argo: FakeArgo, capsys: pytest.CaptureFixture[str], from_template: bool
) -> None:
    get = rf"/api/v1/workflows/{NS}/cybersec-mlops-partitioned-[a-z0-9]{{5}}"
    argo.on("POST", CREATE, echo_created).on("GET", get, workflow_status("Succeeded", *ALL_OK))
    args = ["--partitioned", "--parallelism", "16", "-p", "max-train-rows=100000"]
    code, _ = submit(argo, capsys, *args, *(["--from-template"] if from_template else []))
    assert code == 0
    workflow = argo.calls("POST")[0].body["workflow"]
    assert workflow["metadata"]["name"].startswith("cybersec-mlops-partitioned-")
    assert workflow["spec"]["parallelism"] == 16
    if from_template:
        assert workflow["spec"]["workflowTemplateRef"] == {"name": "cybersec-mlops-partitioned"}
    else:
        assert [t["name"] for t in workflow["spec"]["templates"]][:3] == ["pipeline", "partitions", "ingest"]


def test_a_parameter_of_the_other_pipeline_is_refused(argo: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    code, log = submit(argo, capsys, "-p", "max-train-rows=100000")  # only the partitioned pipeline has it
    assert code == SubmitExit.USAGE and "max-train-rows" in log
    assert argo.calls("POST") == []


def test_failed_workflow_names_the_failed_node(argo: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    failed = node("train", "Failed", exit_code="1", message="Error (exit code 1)", started="3")
    retry = node("train", "Failed", node_type="Retry", message="No more retries left")
    argo.on("POST", CREATE, echo_created)
    argo.on("GET", GET, workflow_status("Failed", INGEST_OK, SILVER_OK, failed, retry, message="child failed"))
    code, log = submit(argo, capsys, "--from-template")
    assert code == SubmitExit.FAILED == 1
    assert "failed node train [Pod]: Failed — Error (exit code 1)\n" in log
    assert "Failed: child failed" in log


def test_gate_failure_has_its_own_exit_code(argo: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    gate = node("eval", "Failed", exit_code="3", message="gate", started="4")
    argo.on("POST", CREATE, echo_created)
    argo.on("GET", GET, workflow_status("Failed", INGEST_OK, SILVER_OK, TRAIN_OK, gate))
    code, log = submit(argo, capsys, "--from-template")
    assert code == SubmitExit.GATE_FAILED == 3
    assert "quality gate rejected the model" in log and "eval [Pod]: Failed — gate (exit code 3)" in log


@pytest.mark.parametrize(
    ("attempts", "other_failure", "expected"),
    [
        (["75", "3"], False, SubmitExit.GATE_FAILED),  # a flaky service retried, then the gate rejected
        (["75", "75"], False, SubmitExit.FAILED),
        (["75", "3"], True, SubmitExit.FAILED),  # another stage's final attempt failed too: 1 outranks 3
    ],
)
def test_only_the_final_attempt_of_a_retried_node_decides_the_exit_code(
    argo: FakeArgo,
    capsys: pytest.CaptureFixture[str],
    attempts: list[str],
    other_failure: bool,
    expected: SubmitExit,
) -> None:
    ids = [f"eval-{i}" for i in range(len(attempts))]
    tries = [
        node(f"eval({i})", "Failed", template="eval", exit_code=code, node_id=ids[i], started=f"4{i}")
        for i, code in enumerate(attempts)
    ]
    retry = node("eval", "Failed", node_type="Retry", children=ids, message="No more retries left", started="4")
    train = node("train", "Failed", exit_code="1", started="3") if other_failure else TRAIN_OK
    argo.on("POST", CREATE, echo_created)
    argo.on("GET", GET, workflow_status("Failed", INGEST_OK, SILVER_OK, train, retry, *tries))
    code, log = submit(argo, capsys, "--from-template")
    assert code == expected, log
    assert f"failed node eval({len(attempts) - 1}) [Pod]" in log
    assert "failed node eval(0) [Pod]" not in log, "a superseded attempt is not what failed the workflow"


def test_error_phase(argo: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    broken = node("ingest", "Error", message="pod deleted", started="1")
    argo.on("POST", CREATE, echo_created)
    argo.on("GET", GET, workflow_status("Running"), workflow_status("Error", broken, message="pod deleted"))
    code, log = submit(argo, capsys, "--from-template")
    assert code == SubmitExit.ERROR == 4
    assert "Error: pod deleted" in log and "ingest [Pod]: Error — pod deleted" in log


def test_unknown_phase_is_never_success(argo: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    argo.on("POST", CREATE, echo_created).on("GET", GET, workflow_status("Skipped"))
    code, log = submit(argo, capsys, "--from-template")
    assert code == SubmitExit.ERROR
    assert "unknown phase 'Skipped'" in log


@pytest.mark.parametrize("stop", [True, False])
def test_timeout_optionally_stops_the_workflow(argo: FakeArgo, capsys: pytest.CaptureFixture[str], stop: bool) -> None:
    argo.on("POST", CREATE, echo_created)
    argo.on("GET", GET, workflow_status("Running", node("ingest", "Running")))
    argo.on("PUT", STOP, lambda request: (200, {"metadata": {"name": "x"}}))
    code, log = submit(argo, capsys, "--from-template", "--timeout", "0.2", *(["--stop-on-timeout"] if stop else []))
    assert code == SubmitExit.TIMEOUT == 5
    assert "still Running after 0s (--timeout)" in log
    stops = argo.calls("PUT")
    if stop:
        (call,) = stops
        name = argo.calls("POST")[0].body["workflow"]["metadata"]["name"]
        assert call.path == f"/api/v1/workflows/{NS}/{name}/stop"
        assert call.body["name"] == name and call.body["namespace"] == NS
        assert "requested stop" in log
    else:
        assert stops == []
    # The submitter's Role (k8s/job-submitter.yaml) grants workflows create/get/patch and nothing else.
    assert {(r.method, r.path.split("/")[3]) for r in argo.requests} <= {
        ("POST", "workflows"),
        ("GET", "workflows"),
        ("PUT", "workflows"),
    }


def test_a_workflow_that_ends_before_the_stop_request_reports_its_real_phase(
    argo: FakeArgo, capsys: pytest.CaptureFixture[str]
) -> None:
    """Running at the timeout, finished (gate failed) by the time the stop arrives: Argo answers 500."""
    running = workflow_status("Running", INGEST_OK, SILVER_OK, TRAIN_OK, node("eval", "Running", started="4"))
    gate = workflow_status("Failed", INGEST_OK, SILVER_OK, TRAIN_OK, node("eval", "Failed", exit_code="3", started="4"))
    argo.on("POST", CREATE, echo_created)
    argo.on("GET", GET, lambda request: (gate if argo.calls("PUT") else running)(request))
    refused = 'cannot shutdown a completed workflow: workflow: "x", namespace: "mlops"'
    argo.on("PUT", STOP, (500, {"code": 2, "message": refused}))
    code, log = submit(argo, capsys, "--from-template", "--timeout", "0.2", "--stop-on-timeout")
    assert code == SubmitExit.GATE_FAILED, log
    assert len(argo.calls("PUT")) == 1, "a refused stop is followed by a read, not by retries"
    assert "ended before the stop request arrived" in log and "cannot shutdown a completed workflow" in log
    assert "node eval [Pod]: Failed (exit code 3)" in log


def test_a_failed_stop_of_a_running_workflow_is_retried(argo: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    argo.on("POST", CREATE, echo_created)
    argo.on("GET", GET, workflow_status("Running", node("ingest", "Running")))
    argo.on("PUT", STOP, (503, {"message": "unavailable"}), (200, {"metadata": {"name": "x"}}))
    code, log = submit(argo, capsys, "--from-template", "--timeout", "0.2", "--stop-on-timeout")
    assert code == SubmitExit.TIMEOUT, log
    assert len(argo.calls("PUT")) == 2 and "requested stop" in log


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "was not accepted; check ARGO_TOKEN or the ServiceAccount token"),
        (403, "lacks RBAC to create workflows in namespace 'mlops'; check the Role/RoleBinding"),
    ],
)
def test_auth_errors_say_what_to_check(
    argo: FakeArgo, capsys: pytest.CaptureFixture[str], status: int, hint: str
) -> None:
    argo.on("POST", CREATE, (status, {"code": 16, "message": "token not valid"}))
    code, log = submit(argo, capsys, "--from-template")
    assert code == SubmitExit.AUTH == 6
    assert f"HTTP {status} token not valid" in log and hint in log and "token from ARGO_TOKEN" in log
    assert len(argo.calls("POST")) == 1, "auth errors are not retried"


def test_5xx_is_retried_then_succeeds(argo: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    argo.on("POST", CREATE, (503, {"message": "unavailable"}), (502, "bad gateway"), echo_created)
    argo.on("GET", GET, (500, {"message": "etcd timeout"}), workflow_status("Succeeded", *ALL_OK))
    code, log = submit(argo, capsys, "--from-template")
    assert code == 0
    assert len(argo.calls("POST")) == 3 and len(argo.calls("GET")) == 2
    assert "retry 1/5" in log and "HTTP 503: unavailable" in log


def test_create_retried_after_a_lost_response_adopts_the_workflow(
    argo: FakeArgo, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first POST was stored but answered 504; the retry meets 409 and follows the same workflow."""
    argo.on("POST", CREATE, (504, {"message": "timeout"}), (409, {"message": "already exists"}))
    argo.on("GET", GET, workflow_status("Succeeded", *ALL_OK))
    code, _ = submit(argo, capsys, "--from-template")
    assert code == 0
    names = {r.body["workflow"]["metadata"]["name"] for r in argo.calls("POST")}
    assert len(names) == 1 and argo.calls("GET")[0].path.endswith(names.pop())


def test_persistent_5xx_gives_up_as_unreachable(argo: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    argo.on("POST", CREATE, (503, {"message": "unavailable"}))
    code, log = submit(argo, capsys, "--from-template", "--attempts", "3")
    assert code == SubmitExit.UNREACHABLE == 75
    assert "giving up after 3 attempts: HTTP 503: unavailable" in log
    assert len(argo.calls("POST")) == 3


def test_rejected_submission(argo: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    message = 'workflowtemplates.argoproj.io "cybersec-mlops-pipeline" not found'
    argo.on("POST", CREATE, (400, {"code": 3, "message": message}))
    code, log = submit(argo, capsys, "--from-template")
    assert code == SubmitExit.REJECTED == 7
    assert f"HTTP 400: {message}" in log


def test_an_answer_that_is_not_json_is_not_taken_for_the_argo_server(
    argo: FakeArgo, capsys: pytest.CaptureFixture[str]
) -> None:
    argo.on("POST", CREATE, (200, b"<html>please log in</html>"))
    code, log = submit(argo, capsys, "--from-template")
    assert code == SubmitExit.UNREACHABLE
    assert "HTTP 200 but not JSON" in log and "is ARGO_SERVER the Argo Server API" in log


def test_workflow_deleted_while_following(argo: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    argo.on("POST", CREATE, echo_created)
    argo.on("GET", GET, workflow_status("Running"), (404, {"message": "not found"}))
    code, log = submit(argo, capsys, "--from-template")
    assert code == SubmitExit.ERROR
    assert "disappeared from the server" in log


def test_unknown_parameter_is_a_usage_error(argo: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    code, log = submit(argo, capsys, "-p", "sauce=x")
    assert code == SubmitExit.USAGE == 2
    assert "-p sauce: unknown workflow parameter; known: source," in log
    assert argo.requests == []


@pytest.mark.parametrize("tag", ["latest", "LATEST", ""])
def test_a_moving_image_tag_is_refused_before_anything_is_sent(
    argo: FakeArgo, capsys: pytest.CaptureFixture[str], tag: str
) -> None:
    code, log = submit(argo, capsys, "-p", f"image-tag={tag}")
    assert code == SubmitExit.USAGE
    assert "never latest" in log
    assert argo.requests == []


def test_token_and_namespace_from_the_service_account_files(
    argo: FakeArgo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ARGO_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    argo.on("POST", CREATE, echo_created).on("GET", GET, workflow_status("Succeeded", *ALL_OK))
    code, log = submit(argo, capsys, "--from-template", token_file=token_file)
    assert code == 0
    assert argo.calls("POST")[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert f"token from {token_file}" in log


def test_the_token_file_is_read_again_for_every_request(
    argo: FakeArgo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A projected ServiceAccount token expires (~1 h) and the kubelet rewrites the file: use the new one."""
    monkeypatch.delenv("ARGO_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text("first-token-7d2a")

    def create_then_rotate(request: Request) -> Response:
        token_file.write_text("second-token-91be")
        return echo_created(request)

    def only_the_current_token(request: Request) -> Response:
        if request.headers.get("Authorization") != "Bearer second-token-91be":
            return 401, {"message": "token has expired"}
        return workflow_status("Succeeded", *ALL_OK)(request)

    argo.on("POST", CREATE, create_then_rotate).on("GET", GET, only_the_current_token)
    code, log = submit(argo, capsys, "--from-template", token_file=token_file)
    assert code == 0, log
    assert [r.headers["Authorization"] for r in argo.requests] == [
        "Bearer first-token-7d2a",
        "Bearer second-token-91be",
    ]
    assert "first-token" not in log and "second-token" not in log


@pytest.mark.parametrize("rotated", [True, False])
def test_a_401_reads_the_token_file_again_and_retries_once(
    argo: FakeArgo,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    rotated: bool,
) -> None:
    """The token expired between the read and the request: the kubelet has already written a new one."""
    monkeypatch.delenv("ARGO_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text("old-token-3c5d")

    def create(request: Request) -> Response:
        if request.headers.get("Authorization") == "Bearer new-token-8e0f":
            return echo_created(request)
        if rotated:
            token_file.write_text("new-token-8e0f")
        return 401, {"message": "token has expired"}

    argo.on("POST", CREATE, create).on("GET", GET, workflow_status("Succeeded", *ALL_OK))
    code, log = submit(argo, capsys, "--from-template", token_file=token_file)
    posts = [r.headers["Authorization"] for r in argo.calls("POST")]
    assert f"HTTP 401; reading {token_file} again and retrying once" in log
    if rotated:
        assert code == 0, log
        assert posts == ["Bearer old-token-3c5d", "Bearer new-token-8e0f"]
    else:
        assert code == SubmitExit.AUTH, log
        assert posts == ["Bearer old-token-3c5d"] * 2, "one re-read and one retry, no more"
    assert "old-token" not in log and "new-token" not in log


def test_missing_server_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--log-format", "text", "submit", "--wait"]) == SubmitExit.USAGE
    assert "no Argo Server: set ARGO_SERVER" in capsys.readouterr().err


def run_process(server: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "ARGO_SERVER": server,
        "ARGO_TOKEN": TOKEN,
        "ARGO_NAMESPACE": NS,
        "ARGO_SECURE": "false",
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run(
        [sys.executable, "-m", "workflows", "--log-format", "json", "submit", "--wait", *FAST, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_process_exit_code_mirrors_the_final_phase(argo: FakeArgo) -> None:
    argo.on("POST", CREATE, echo_created)
    argo.on("GET", GET, workflow_status("Running"), workflow_status("Succeeded", *ALL_OK))
    ok = run_process(argo.url.removeprefix("http://"), "--from-template")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("cybersec-mlops-") and TOKEN not in ok.stderr
    assert '"msg": "workflow cybersec-mlops-' in ok.stderr
    argo.routes.clear()
    argo.on("POST", CREATE, echo_created).on("GET", GET, workflow_status("Failed", node("silver", "Failed")))
    assert run_process(argo.url, "--from-template").returncode == SubmitExit.FAILED


def test_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    result = run_process(closed, "--from-template", "--attempts", "2")
    assert result.returncode == SubmitExit.UNREACHABLE
    assert f"cannot reach {closed}: ConnectionError" in result.stderr and "check ARGO_SERVER" in result.stderr


@pytest.fixture
def tls_argo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeArgo, Path]]:
    """An HTTPS fake Argo Server whose certificate names 127.0.0.1, and the CA that signed it.

    REQUESTS_CA_BUNDLE names another CA: requests would let it override the client's choice.
    """
    ca, cert, key = issue_certificate(tmp_path, ["127.0.0.1"])
    (tmp_path / "other").mkdir()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(issue_certificate(tmp_path / "other", ["127.0.0.1"])[0]))
    fake = FakeArgo().start(tls=(cert, key))
    fake.on("POST", CREATE, echo_created).on("GET", GET, workflow_status("Succeeded", *ALL_OK))
    yield fake, ca
    fake.stop()


def test_tls_verifies_against_the_mounted_ca(
    tls_argo: tuple[FakeArgo, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argo, ca = tls_argo
    monkeypatch.setenv("ARGO_CA_FILE", str(ca))
    code, log = submit(argo, capsys, "--from-template")
    assert code == 0, log
    assert argo.url.startswith("https://") and len(argo.calls("POST")) == 1


def test_tls_insecure_skip_verify_is_an_explicit_opt_in(
    tls_argo: tuple[FakeArgo, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argo, _ = tls_argo
    monkeypatch.setenv("ARGO_INSECURE_SKIP_VERIFY", "true")
    code, log = submit(argo, capsys, "--from-template")
    assert code == 0, log
    assert "TLS verification of https://127.0.0.1" in log and "is off" in log


@pytest.mark.parametrize(
    ("ca_file", "server_names", "expected"),
    [
        # The Job's default: ConfigMap argo-server-ca not created, so the mounted file is absent.
        ("missing", ["127.0.0.1"], "ARGO_CA_FILE={ca} does not exist: create ConfigMap argo-server-ca (key ca.crt)"),
        ("unset", ["127.0.0.1"], "ARGO_CA_FILE is not set and the system trust does not know the server's CA"),
        ("other-ca", ["127.0.0.1"], "the Argo Server's certificate does not chain to the CA in ARGO_CA_FILE={ca}"),
        # Argo's default self-signed certificate names localhost, not the Service.
        ("server-ca", ["localhost"], "the Argo Server's certificate is not valid for 127.0.0.1"),
    ],
)
def test_tls_failure_is_a_configuration_error_reported_at_once(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    ca_file: str,
    server_names: list[str],
    expected: str,
) -> None:
    server_ca, cert, key = issue_certificate(tmp_path, server_names)
    (tmp_path / "other").mkdir()
    other_ca, _, _ = issue_certificate(tmp_path / "other", ["127.0.0.1"])
    ca = {"missing": tmp_path / "absent" / "ca.crt", "other-ca": other_ca, "server-ca": server_ca}.get(ca_file)
    if ca is not None:
        monkeypatch.setenv("ARGO_CA_FILE", str(ca))
    argo = FakeArgo().start(tls=(cert, key)).on("POST", CREATE, echo_created)
    try:
        code, log = submit(argo, capsys, "--from-template", "--attempts", "3")
    finally:
        argo.stop()
    assert code == SubmitExit.USAGE == 2, log
    assert f"TLS verification of {argo.url} failed: " + expected.format(ca=ca) in log
    assert "ARGO_INSECURE_SKIP_VERIFY=true (test clusters only)" in log and "argo-server-tls" in log
    assert "retry" not in log and "giving up" not in log, "a certificate that does not verify is not retried"


def test_a_ca_file_without_a_certificate_is_a_usage_error(
    argo: FakeArgo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "ca.crt").write_text("")
    monkeypatch.setenv("ARGO_CA_FILE", str(tmp_path / "ca.crt"))
    code, log = submit(argo, capsys, "--from-template")
    assert code == SubmitExit.USAGE
    assert f"ARGO_CA_FILE={tmp_path / 'ca.crt'} holds no usable PEM certificate" in log
    assert argo.requests == []
