"""The local executor on plain Argo workflows (tests/workflows/localargo/fixtures), subprocess runtime.

These workflows are not ours: they show the executor follows Argo's semantics for
parameters, artifacts passed by ``from``, ``depends`` over task results, failFast,
continueOn, when, retries of exit 75 only, outputs of failed steps, deadlines,
nested DAGs, script templates and parallelism.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflows.localargo.engine import Outcome, RunOptions, run_workflow
from workflows.localargo.errors import ManifestError

FIXTURES = Path(__file__).parent / "fixtures"


def run(tmp_path: Path, fixture: str, params: dict[str, str] | None = None, **kw: Any) -> tuple[Outcome, dict, str]:
    out = io.StringIO()
    opts = RunOptions(
        manifest=FIXTURES / f"{fixture}.yaml",
        parameters=params or {},
        workdir=tmp_path / "runs",
        artifacts=str(tmp_path / "artifacts"),
        **kw,
    )
    outcome = run_workflow(opts, out=out)
    return outcome, json.loads(outcome.status_path.read_text()), out.getvalue()


def tasks(status: dict) -> dict[str, dict]:
    """DAG task nodes by display name, nested DAGs included."""
    found: dict[str, dict] = {}

    def walk(node: dict) -> None:
        for child in node["children"]:
            if child["type"] != "Pod" or "(" not in child["displayName"]:
                found[child["displayName"]] = child
            if child["type"] == "DAG":
                walk(child)

    walk(status["root"])
    return found


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUN_LOCAL_BACKOFF_SCALE", "0.01")


def test_parameters_and_artifacts_flow_through_a_diamond(tmp_path: Path) -> None:
    outcome, status, text = run(tmp_path, "params-artifacts", {"greeting": "good morning"})
    assert outcome.phase == "Succeeded" and outcome.exit_code == 0
    t = tasks(status)
    assert t["produce"]["outputs"]["parameters"] == {"words": "3"}  # "good morning World"; trailing newline trimmed
    assert t["shout"]["outputs"]["parameters"]["length"] == str(len(f"good morning world from {outcome.name}"))
    assert t["shout"]["outputs"]["parameters"]["missing-with-default"] == "fallback"
    assert t["shout"]["outputs"]["result"] == f"pod {t['shout']['podName']} attempt 0"
    art = tmp_path / "artifacts"
    combined = (art / "messages" / outcome.name / "combined.txt").read_text()
    assert combined == f"GOOD MORNING WORLD FROM {outcome.name.upper()} | good morning world from {outcome.name}"
    # no archive field: Argo's default tar.gz at <workflow>/<pod>/<file>.tgz, holding the file under its name
    key = t["whisper"]["outputs"]["artifacts"]["out"]["key"]
    assert key == f"{outcome.name}/{t['whisper']['podName']}/out.txt.tgz"
    with tarfile.open(art / key) as tar:
        assert tar.getnames() == ["out.txt"]
    assert t["combine"]["outputs"]["result"] == f"{len(combined.split(' | ')[0])}+{len(combined.split(' | ')[1])} 3"
    assert "✔ combine" in text and "STEP" in text


def test_depends_results_and_fail_fast(tmp_path: Path) -> None:
    outcome, status, text = run(tmp_path, "depends-failfast")
    assert outcome.phase == "Failed" and outcome.exit_code == 1
    phases = {name: node["phase"] for name, node in tasks(status).items()}
    assert phases == {
        "boom": "Failed",
        "slow": "Succeeded",
        "after-boom": "Omitted",
        "on-failure": "Succeeded",
        "either": "Succeeded",
    }
    assert status["root"]["notStarted"] == ["after-slow"]  # ready only after the DAG was already failing
    assert tasks(status)["boom"]["message"] == "Error (exit code 3)"
    assert status["root"]["message"] == "child 'depends-failfast.boom' failed"
    assert "after-slow  (not started: failFast)" in text
    assert "exiting with 3" in text  # the failed task's log tail


def test_without_fail_fast_every_branch_runs(tmp_path: Path) -> None:
    outcome, status, _ = run(tmp_path, "depends-no-failfast")
    assert outcome.phase == "Failed"
    assert tasks(status)["after-slow"]["phase"] == "Succeeded"
    assert status["root"]["notStarted"] == []


def test_handled_failures_do_not_fail_the_dag(tmp_path: Path) -> None:
    outcome, status, _ = run(tmp_path, "handled-failure")
    phases = {name: node["phase"] for name, node in tasks(status).items()}
    assert phases == {"flaky": "Failed", "cleanup": "Succeeded", "tolerant": "Failed", "after-tolerant": "Succeeded"}
    assert outcome.phase == "Succeeded" and outcome.exit_code == 0


def test_retries_exit_75_only(tmp_path: Path) -> None:
    outcome, status, _ = run(tmp_path, "retries")
    t = tasks(status)
    attempts = {name: [(c["phase"], c["exitCode"]) for c in node["children"]] for name, node in t.items()}
    assert attempts["transient"] == [("Failed", 75), ("Failed", 75), ("Succeeded", 0)]
    assert attempts["bad-input"] == [("Failed", 2)]
    assert attempts["always-75"] == [("Failed", 75)] * 3
    assert attempts["on-error"] == [("Failed", 75)]  # OnError does not retry a Failed attempt
    assert t["transient"]["type"] == "Retry" and t["transient"]["phase"] == "Succeeded"
    assert t["always-75"]["message"] == "No more retries left"
    assert t["bad-input"]["message"] == "retryStrategy.expression evaluated to false"
    # {{retries}} and {{pod.name}} are per attempt: each attempt has its own pod and log
    logs = [Path(c["log"]).read_text().strip() for c in t["transient"]["children"]]
    assert logs == [f"attempt {i} of {c['podName']}" for i, c in enumerate(t["transient"]["children"])]
    assert len({c["podName"] for c in t["transient"]["children"]}) == 3
    assert outcome.phase == "Failed"


def test_backoff_is_waited_where_argo_waits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUN_LOCAL_BACKOFF_SCALE", "0.5")  # gate: 1 s of backoff; unlimited: 2 s if it waited
    _, status, _ = run(tmp_path, "retry-backoff")
    t = tasks(status)

    def waited(node: dict) -> float:
        return float(node["durationSeconds"]) - sum(float(c["durationSeconds"]) for c in node["children"])

    assert [c["exitCode"] for c in t["gate"]["children"]] == [3]
    assert t["gate"]["message"] == "retryStrategy.expression evaluated to false"
    assert waited(t["gate"]) >= 0.9  # the backoff comes before the expression, as in Argo
    assert [c["exitCode"] for c in t["unlimited"]["children"]] == [75, 0]
    assert waited(t["unlimited"]) < 0.8  # no limit: Argo skips the backoff


def test_max_duration_is_a_deadline_for_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUN_LOCAL_BACKOFF_SCALE", "1")
    outcome, status, _ = run(tmp_path, "retry-deadline")
    t = tasks(status)
    late = t["late"]["children"]
    assert [(c["phase"], c["exitCode"]) for c in late] == [("Failed", 75), ("Failed", None)]
    assert late[1]["message"] == "Step exceeded its deadline"
    assert late[1]["durationSeconds"] < 3  # killed at first start + 2 s, not after its 4 s
    assert t["late"]["message"] == "Max duration limit exceeded"
    assert [c["exitCode"] for c in t["too-late"]["children"]] == [75]  # past the deadline: never retried
    assert t["too-late"]["message"] == "Max duration limit exceeded"
    assert outcome.phase == "Failed"


@pytest.mark.parametrize(("side", "ran", "skipped"), [("heads", "heads", "tails"), ("tails", "tails", "heads")])
def test_when_skips_and_plain_depends_accepts_skipped(tmp_path: Path, side: str, ran: str, skipped: str) -> None:
    outcome, status, _ = run(tmp_path, "when-skipped", {"side": side})
    t = tasks(status)
    assert t[ran]["phase"] == "Succeeded"
    assert t[skipped]["phase"] == "Skipped"
    assert t[skipped]["message"].startswith("when '") and t[skipped]["message"].endswith("' evaluated false")
    said = t["report"]["outputs"]["parameters"]["said"]
    assert said == f"flip said {side} (Succeeded), heads is {t['heads']['phase']}"
    assert outcome.phase == "Succeeded"


def test_outputs_of_a_failed_step_are_saved_and_deadlines_kill(tmp_path: Path) -> None:
    outcome, status, _ = run(tmp_path, "outputs-on-failure")
    t = tasks(status)
    assert t["gate"]["phase"] == "Failed" and t["gate"]["exitCode"] == 3
    assert t["gate"]["outputs"]["parameters"] == {"verdict": "failed"}
    report = tmp_path / "artifacts" / "eval" / outcome.name / "report.html"
    assert report.read_text() == "<p>gate failed</p>"
    assert set(t["gate"]["outputs"]["artifacts"]) == {"report"}  # the optional one was never written
    assert t["deadline"]["phase"] == "Failed"
    assert t["deadline"]["message"] == "Pod was active on the node longer than the specified deadline"
    assert t["deadline"]["durationSeconds"] < 10
    assert outcome.exit_code == 1


def test_nested_dag_script_env_and_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = {"SECRET_TOKEN": "s3cr3t", "CONFIG_HOST": "db.local", "LEAKY": "should-not-leak"}
    (tmp_path / "secrets.env").write_text("# local stand-ins for Secrets\nexport SECRET_TOKEN='s3cr3t'\n")
    outcome, status, text = run(
        tmp_path,
        "nested-script-env",
        env_file=tmp_path / "secrets.env",
        extra_env={k: v for k, v in env.items() if k != "SECRET_TOKEN"},
    )
    assert outcome.name.startswith("nested-")
    t = tasks(status)
    assert t["pair"]["type"] == "DAG" and t["pair"]["outputs"]["parameters"] == {"total": "41"}
    assert t["double"]["outputs"]["parameters"]["value"] == "40"
    assert t["show"]["outputs"]["result"] == "total=41 doubled=40"
    env_log = dict(line.split(" = ") for line in Path(t["env"]["log"]).read_text().splitlines())
    assert env_log == {
        "PLAIN": f"plain-{outcome.name}",
        "SECRET_TOKEN": "s3cr3t",
        "CONFIG_HOST": "db.local",
        "MISSING_SECRET": "<unset>",
        "POD": t["env"]["podName"],
        "LEAKY": "<unset>",
    }
    assert "MISSING_SECRET is left unset" in caplog.text
    assert t["no-output"]["phase"] == "Error"
    assert (
        "failed to save outputs: output artifact result: /tmp/outputs/result.json does not exist"
        in t["no-output"]["message"]
    )
    assert outcome.phase in ("Failed", "Error") and outcome.exit_code == 1
    assert "s3cr3t" not in text  # secret values never reach the console


def test_data_that_mentions_a_mapped_path_is_never_rewritten(tmp_path: Path) -> None:
    import yaml

    doc = yaml.safe_load((FIXTURES / "when-skipped.yaml").read_text())
    doc["spec"]["templates"][0]["dag"]["tasks"] = [
        {
            "name": "say",
            "template": "say",
            "arguments": {"parameters": [{"name": "text", "value": "grep /tmp/outputs /proc/mounts"}]},
        }
    ]
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump(doc))
    outcome = run_workflow(
        RunOptions(manifest=path, workdir=tmp_path / "runs", artifacts=str(tmp_path / "a")), io.StringIO()
    )
    say = tasks(json.loads(outcome.status_path.read_text()))["say"]
    assert say["phase"] == "Error" and "cannot tell a path from data" in say["message"]  # refused, not rewritten


def test_script_file_comes_after_args_as_in_argo(tmp_path: Path) -> None:
    import yaml

    doc = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "script-args"},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {"name": "main", "dag": {"tasks": [{"name": "s", "template": "s"}]}},
                {
                    "name": "s",
                    "script": {
                        "image": "python:3.11-slim",
                        "command": ["python"],
                        "args": ["-B"],  # an interpreter option: command + args + [script], as Argo runs it
                        "source": "import sys; print(sys.argv[1:], sys.dont_write_bytecode)",
                    },
                },
            ],
        },
    }
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(doc))
    outcome = run_workflow(
        RunOptions(manifest=path, workdir=tmp_path / "runs", artifacts=str(tmp_path / "a")), io.StringIO()
    )
    assert tasks(json.loads(outcome.status_path.read_text()))["s"]["outputs"]["result"] == "[] True"


def test_parallelism_serialises_pods(tmp_path: Path) -> None:
    outcome, status, _ = run(tmp_path, "parallelism")
    assert outcome.phase == "Succeeded"
    spans = sorted((n["startedAt"], n["finishedAt"]) for n in tasks(status).values())
    assert len(spans) == 3
    total = status["root"]["durationSeconds"]
    assert total >= 3 * 0.3  # 3 naps of 0.3 s one after another


@pytest.mark.parametrize(("targets", "ran"), [("b", {"a", "b"}), ("a c", {"a", "c"})])
def test_dag_target_is_templated_then_split_on_spaces(tmp_path: Path, targets: str, ran: set[str]) -> None:
    outcome, status, _ = run(tmp_path, "dag-target", {"targets": targets})
    assert outcome.phase == "Succeeded", status["root"]["message"]
    assert {name for name, node in tasks(status).items() if node["phase"] == "Succeeded"} == ran
    assert set(tasks(status)) == ran  # the others are not targets nor their ancestors


def test_a_name_cannot_be_reused_in_the_same_workdir(tmp_path: Path) -> None:
    run(tmp_path, "handled-failure")
    with pytest.raises(ManifestError, match="holds an earlier run named handled-failure"):
        run(tmp_path, "handled-failure")


def test_reference_to_a_task_that_is_not_an_ancestor_errors(tmp_path: Path) -> None:
    import yaml

    doc = yaml.safe_load((FIXTURES / "params-artifacts.yaml").read_text())
    tasks_ = doc["spec"]["templates"][0]["dag"]["tasks"]
    tasks_[2]["arguments"]["artifacts"][0]["from"] = "{{tasks.shout.outputs.artifacts.out}}"  # whisper ∦ shout
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    outcome = run_workflow(
        RunOptions(manifest=path, workdir=tmp_path / "runs", artifacts=str(tmp_path / "a")), out=io.StringIO()
    )
    status = json.loads(outcome.status_path.read_text())
    whisper = tasks(status)["whisper"]
    assert whisper["phase"] == "Error"
    assert "names task 'shout', which is not a dependency of this task" in whisper["message"]
    assert tasks(status)["combine"]["phase"] == "Omitted"
    assert outcome.phase == "Error"


@pytest.mark.parametrize(
    ("strategy", "kept"),
    [(None, {"produce", "shout", "whisper", "combine"}), ("OnPodSuccess", set()), ("OnWorkflowSuccess", None)],
)
def test_pod_gc_removes_a_finished_pods_sandbox_but_not_its_log(
    tmp_path: Path, strategy: str | None, kept: set[str] | None
) -> None:
    """As Argo deletes a pod (and its emptyDirs) under podGC, the executor removes its sandbox; logs stay."""
    doc = yaml.safe_load((FIXTURES / "params-artifacts.yaml").read_text())
    if strategy:
        doc["spec"]["podGC"] = {"strategy": strategy}
    manifest = tmp_path / "wf.yaml"
    manifest.write_text(yaml.safe_dump(doc))
    opts = RunOptions(manifest=manifest, parameters={}, workdir=tmp_path / "runs", artifacts=str(tmp_path / "art"))
    outcome = run_workflow(opts, out=io.StringIO())
    assert outcome.phase == "Succeeded"
    status = json.loads(outcome.status_path.read_text())
    pods = {name: node["podName"] for name, node in tasks(status).items() if node.get("podName")}
    sandboxes = {name for name, pod in pods.items() if (outcome.status_path.parent / "pods" / pod).exists()}
    assert sandboxes == (set(pods) if kept is None else kept)
    assert all(Path(node["log"]).exists() for node in tasks(status).values() if node.get("log"))
