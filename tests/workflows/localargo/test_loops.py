"""withItems / withParam on DAG tasks: expansion, item substitution, parallelism, failFast and fan-in."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflows.localargo.engine import Outcome, RunOptions, run_workflow
from workflows.localargo.errors import ExecutorError
from workflows.localargo.manifest import load_manifest

PY = {"image": "python:3.11-slim", "command": ["python", "-c"]}

# a child that records when it ran (host time, in a file shared by all pods of the run)
NAP = (
    "import sys, time, json; t0 = time.time(); time.sleep(float(sys.argv[2])); "
    "open(sys.argv[3], 'a').write(json.dumps([sys.argv[1], t0, time.time()]) + '\\n'); "
    "open(sys.argv[5], 'w').write(str(int(sys.argv[1]) * 10)); "
    "sys.exit(int(sys.argv[1] == sys.argv[4]))"
)


def workflow(tmp_path: Path, spec: dict[str, Any]) -> Path:
    doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "loops"}, "spec": spec}
    path = tmp_path / "loops.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run(tmp_path: Path, spec: dict[str, Any], **params: str) -> tuple[Outcome, dict[str, Any]]:
    opts = RunOptions(
        manifest=workflow(tmp_path, spec),
        workdir=tmp_path / "runs",
        artifacts=str(tmp_path / "artifacts"),
        parameters=params,
    )
    outcome = run_workflow(opts, out=io.StringIO())
    return outcome, json.loads(outcome.status_path.read_text())


def by_name(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def walk(node: dict[str, Any]) -> None:
        for child in node["children"]:
            found[child["displayName"]] = child
            walk(child)

    walk(status["root"])
    return found


def nap_template(fail: str = "-1") -> dict[str, Any]:
    return {
        "name": "nap",
        "inputs": {"parameters": [{"name": "n"}, {"name": "secs", "value": "0.4"}]},
        "outputs": {"parameters": [{"name": "size", "valueFrom": {"path": "/tmp/outputs/size"}}]},
        "container": {
            **PY,
            "args": [
                NAP,
                "{{inputs.parameters.n}}",
                "{{inputs.parameters.secs}}",
                "{{workflow.parameters.trace}}",
                fail,
                "/tmp/outputs/size",
            ],
        },
    }


def fan_out_spec(parallelism: int | None = None, fail: str = "-1", fail_fast: bool = True) -> dict[str, Any]:
    main: dict[str, Any] = {
        "name": "main",
        "dag": {
            "failFast": fail_fast,
            "tasks": [
                {
                    "name": "list",
                    "template": "list",
                    "arguments": {"parameters": [{"name": "count", "value": "{{workflow.parameters.count}}"}]},
                },
                {
                    "name": "work",
                    "depends": "list",
                    "template": "nap",
                    "withParam": "{{tasks.list.outputs.parameters.parts}}",
                    "arguments": {"parameters": [{"name": "n", "value": "{{item.n}}"}]},
                },
                {
                    "name": "merge",
                    "depends": "work",
                    "template": "show",
                    "arguments": {"parameters": [{"name": "sizes", "value": "{{tasks.work.outputs.parameters.size}}"}]},
                },
            ],
        },
    }
    if parallelism is not None:
        main["parallelism"] = parallelism
    return {
        "entrypoint": "main",
        "arguments": {"parameters": [{"name": "trace"}, {"name": "count", "value": "5"}]},
        "templates": [
            main,
            {
                "name": "list",
                "inputs": {"parameters": [{"name": "count"}]},
                "outputs": {"parameters": [{"name": "parts", "valueFrom": {"path": "/tmp/outputs/parts"}}]},
                "container": {
                    **PY,
                    "args": [
                        "import json, sys; open(sys.argv[2], 'w').write(json.dumps("
                        "[{'n': i, 'tag': 'p%d' % i} for i in range(int(sys.argv[1]))]))",
                        "{{inputs.parameters.count}}",
                        "/tmp/outputs/parts",
                    ],
                },
            },
            nap_template(fail),
            {
                "name": "show",
                "inputs": {"parameters": [{"name": "sizes"}]},
                "container": {**PY, "args": ["import sys; print(sys.argv[1])", "{{inputs.parameters.sizes}}"]},
            },
        ],
    }


def spans(trace: Path) -> list[tuple[str, float, float]]:
    return [tuple(json.loads(line)) for line in trace.read_text().splitlines()]  # type: ignore[misc]


def most_at_once(runs: list[tuple[str, float, float]]) -> int:
    return max(sum(1 for _, s, e in runs if s <= t < e) for _, t, _ in runs)


def test_with_param_expands_bounds_and_fans_in(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    outcome, status = run(tmp_path, fan_out_spec(parallelism=2), trace=str(trace))
    assert outcome.phase == "Succeeded", outcome.message
    nodes = by_name(status)
    group = nodes["work"]
    assert group["type"] == "TaskGroup" and group["phase"] == "Succeeded"
    names = [c["displayName"] for c in group["children"]]
    assert names == [f"work({i}:n:{i},tag:p{i})" for i in range(5)]
    assert all(c["type"] == "Pod" and c["phase"] == "Succeeded" for c in group["children"])
    assert group["children"][0]["name"] == "loops.work(0:n:0,tag:p0)"
    runs = spans(trace)
    assert sorted(r[0] for r in runs) == ["0", "1", "2", "3", "4"]
    assert most_at_once(runs) <= 2, "template parallelism 2 bounds the expanded pods"
    # the dependant waits for every child, then gets their outputs as a JSON list in item order
    merge = nodes["merge"]
    assert merge["startedAt"] >= max(c["finishedAt"] for c in group["children"])
    assert Path(merge["log"]).read_text().strip() == '["0","10","20","30","40"]'


def test_workflow_parallelism_bounds_expanded_pods(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    spec = fan_out_spec()
    spec["parallelism"] = 1
    outcome, _ = run(tmp_path, spec, trace=str(trace), count="3")
    assert outcome.phase == "Succeeded", outcome.message
    runs = spans(trace)
    assert len(runs) == 3 and most_at_once(runs) == 1


def test_without_parallelism_children_run_together(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    outcome, _ = run(tmp_path, fan_out_spec(), trace=str(trace), count="3")
    assert outcome.phase == "Succeeded", outcome.message
    assert most_at_once(spans(trace)) >= 2


def test_a_failed_child_fails_the_group_and_fail_fast_starts_no_more(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    outcome, status = run(tmp_path, fan_out_spec(parallelism=1, fail="1"), trace=str(trace))
    assert outcome.phase == "Failed"
    nodes = by_name(status)
    assert nodes["work"]["phase"] == "Failed"
    assert [r[0] for r in spans(trace)] == ["0", "1"], "failFast: no child starts after one failed"
    assert nodes["work"]["notStarted"] == [f"work({i}:n:{i},tag:p{i})" for i in (2, 3, 4)]
    assert "merge" not in nodes or nodes["merge"]["phase"] == "Omitted"


def test_without_fail_fast_every_child_runs(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    outcome, status = run(tmp_path, fan_out_spec(parallelism=1, fail="1", fail_fast=False), trace=str(trace))
    assert outcome.phase == "Failed"
    assert sorted(r[0] for r in spans(trace)) == ["0", "1", "2", "3", "4"]
    phases = [c["phase"] for c in by_name(status)["work"]["children"]]
    assert phases == ["Succeeded", "Failed", "Succeeded", "Succeeded", "Succeeded"]


def test_continue_on_failed_keeps_the_group_succeeded_and_fans_in_the_successes(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    spec = fan_out_spec(fail="1")
    spec["templates"][0]["dag"]["tasks"][1]["continueOn"] = {"failed": True}
    outcome, status = run(tmp_path, spec, trace=str(trace))
    assert outcome.phase == "Succeeded", outcome.message
    nodes = by_name(status)
    assert nodes["work"]["phase"] == "Succeeded"
    assert nodes["work(1:n:1,tag:p1)"]["phase"] == "Failed"
    assert Path(nodes["merge"]["log"]).read_text().strip() == '["0","20","30","40"]'


def test_with_items_scalars_maps_and_when(tmp_path: Path) -> None:
    spec = {
        "entrypoint": "main",
        "templates": [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {
                            "name": "say",
                            "template": "echo",
                            "withItems": ["hello", 2, True, {"os": "debian", "v": 12}, ["x", "(y)"]],
                            "when": "'{{item}}' != '2'",
                            "arguments": {"parameters": [{"name": "msg", "value": "{{item}}"}]},
                        },
                        {
                            "name": "os",
                            "template": "echo",
                            "withItems": [{"os": "debian", "v": 12}, {"os": "alpine", "v": 3}],
                            "arguments": {"parameters": [{"name": "msg", "value": "{{index}}:{{item.os}}-{{item.v}}"}]},
                        },
                        {
                            "name": "all",
                            "depends": "say && os.AnySucceeded",
                            "template": "echo",
                            "arguments": {
                                "parameters": [
                                    {
                                        "name": "msg",
                                        "value": "{{tasks.os.outputs.result}} {{tasks.say.outputs.parameters.out}}",
                                    }
                                ]
                            },
                        },
                    ]
                },
            },
            {
                "name": "echo",
                "inputs": {"parameters": [{"name": "msg"}]},
                "outputs": {"parameters": [{"name": "out", "valueFrom": {"path": "/tmp/outputs/out"}}]},
                "container": {
                    **PY,
                    "args": [
                        "import sys, json; m = sys.argv[1]; open(sys.argv[2], 'w').write(m); print(json.dumps(m))",
                        "{{inputs.parameters.msg}}",
                        "/tmp/outputs/out",
                    ],
                },
            },
        ],
    }
    outcome, status = run(tmp_path, spec)
    assert outcome.phase == "Succeeded", outcome.message
    nodes = by_name(status)
    assert [c["displayName"] for c in nodes["say"]["children"]] == [
        "say(0:hello)",
        "say(1:2)",
        "say(2:true)",
        "say(3:os:debian,v:12)",
        "say(4:[x y])",
    ]
    assert nodes["say(1:2)"]["phase"] == "Skipped" and nodes["say(1:2)"]["type"] == "Skipped"
    assert nodes["say(3:os:debian,v:12)"]["outputs"]["parameters"]["out"] == '{"os":"debian","v":12}'
    assert [c["outputs"]["parameters"]["out"] for c in nodes["os"]["children"]] == ["0:debian-12", "1:alpine-3"]
    text = Path(nodes["all"]["log"]).read_text().strip()
    compact = (",", ":")
    results = json.dumps(["0:debian-12", "1:alpine-3"], separators=compact)  # each result parsed as JSON
    outs = json.dumps(["hello", "true", '{"os":"debian","v":12}', '["x","(y)"]'], separators=compact)
    assert text == json.dumps(f"{results} {outs}")


@pytest.mark.parametrize(
    ("with_param", "phase", "node_type", "message"),
    [
        ("[]", "Skipped", "Skipped", "Skipped, empty params"),
        ("not json", "Error", "Skipped", "withParam value could not be parsed as a JSON list: not json"),
        ('{"a": 1}', "Error", "Skipped", "could not be parsed as a JSON list"),
    ],
)
def test_with_param_empty_or_not_a_list(
    tmp_path: Path, with_param: str, phase: str, node_type: str, message: str
) -> None:
    spec = {
        "entrypoint": "main",
        "arguments": {"parameters": [{"name": "parts", "value": with_param}]},
        "templates": [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {
                            "name": "work",
                            "template": "echo",
                            "withParam": "{{workflow.parameters.parts}}",
                            "arguments": {"parameters": [{"name": "msg", "value": "{{item}}"}]},
                        }
                    ]
                },
            },
            {"name": "echo", "inputs": {"parameters": [{"name": "msg"}]}, "container": {**PY, "args": ["print(1)"]}},
        ],
    }
    outcome, status = run(tmp_path, spec)
    node = by_name(status)["work"]
    assert (node["phase"], node["type"]) == (phase, node_type)
    assert message in node["message"]
    assert outcome.phase == ("Succeeded" if phase == "Skipped" else "Error")


def test_with_sequence_is_still_refused(tmp_path: Path) -> None:
    spec = {
        "entrypoint": "main",
        "templates": [
            {"name": "main", "dag": {"tasks": [{"name": "a", "template": "b", "withSequence": {"count": "2"}}]}},
            {"name": "b", "container": {**PY, "args": ["print(1)"]}},
        ],
    }
    with pytest.raises(ExecutorError, match=r"withSequence"):
        load_manifest(workflow(tmp_path, spec), {})


def test_an_item_field_of_a_string_item_fails_the_expansion(tmp_path: Path) -> None:
    spec = {
        "entrypoint": "main",
        "templates": [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {
                            "name": "work",
                            "template": "echo",
                            "withItems": ["a", "b"],
                            "arguments": {"parameters": [{"name": "msg", "value": "{{item.name}}"}]},
                        }
                    ]
                },
            },
            {"name": "echo", "inputs": {"parameters": [{"name": "msg"}]}, "container": {**PY, "args": ["print(1)"]}},
        ],
    }
    outcome, status = run(tmp_path, spec)
    node = by_name(status)["work"]
    assert outcome.phase == "Error" and node["phase"] == "Error" and node["children"] == []
    assert "cannot resolve {{item.name}} for item 0 (a)" in node["message"]
