"""Template memoize: a ConfigMap-shaped cache file, hits skip the pod and reuse its outputs."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflows.localargo.engine import Outcome, RunOptions, run_workflow
from workflows.localargo.memo import parse_duration

PY = {"image": "python:3.11-slim", "command": ["python", "-c"]}

# counts its runs in a host file, writes a parameter and an artifact, fails on request
WORK = (
    "import sys; open(sys.argv[2], 'a').write(sys.argv[1] + '\\n'); "
    "open(sys.argv[3], 'w').write('size-' + sys.argv[1]); "
    "open(sys.argv[4], 'w').write('data for ' + sys.argv[1]); sys.exit(int(sys.argv[5]))"
)


def spec(key: str = "part-{{inputs.parameters.part}}", max_age: str = "1h", fail: str = "0") -> dict[str, Any]:
    return {
        "entrypoint": "main",
        "arguments": {"parameters": [{"name": "counter"}, {"name": "part", "value": "a"}]},
        "templates": [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {
                            "name": "work",
                            "template": "work",
                            "arguments": {"parameters": [{"name": "part", "value": "{{workflow.parameters.part}}"}]},
                        },
                        {
                            "name": "use",
                            "depends": "work",
                            "template": "use",
                            "arguments": {
                                "parameters": [{"name": "size", "value": "{{tasks.work.outputs.parameters.size}}"}],
                                "artifacts": [{"name": "data", "from": "{{tasks.work.outputs.artifacts.data}}"}],
                            },
                        },
                    ]
                },
            },
            {
                "name": "work",
                "inputs": {"parameters": [{"name": "part"}]},
                "memoize": {"key": key, "maxAge": max_age, "cache": {"configMap": {"name": "work-cache"}}},
                "outputs": {
                    "parameters": [{"name": "size", "valueFrom": {"path": "/tmp/outputs/size"}}],
                    "artifacts": [{"name": "data", "path": "/tmp/outputs/data.txt"}],
                },
                "container": {
                    **PY,
                    "args": [
                        WORK,
                        "{{inputs.parameters.part}}",
                        "{{workflow.parameters.counter}}",
                        "/tmp/outputs/size",
                        "/tmp/outputs/data.txt",
                        fail,
                    ],
                },
            },
            {
                "name": "use",
                "inputs": {
                    "parameters": [{"name": "size"}],
                    "artifacts": [{"name": "data", "path": "/tmp/inputs/data.txt"}],
                },
                "container": {
                    **PY,
                    "args": [
                        "import sys; print(sys.argv[1], open(sys.argv[2]).read())",
                        "{{inputs.parameters.size}}",
                        "/tmp/inputs/data.txt",
                    ],
                },
            },
        ],
    }


def run(tmp_path: Path, body: dict[str, Any], name: str, **params: str) -> tuple[Outcome, dict[str, dict[str, Any]]]:
    doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name}, "spec": body}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    opts = RunOptions(
        manifest=path,
        workdir=tmp_path / "runs",
        artifacts=str(tmp_path / "artifacts"),
        parameters={"counter": str(tmp_path / "runs.txt"), **params},
    )
    outcome = run_workflow(opts, out=io.StringIO())
    status = json.loads(outcome.status_path.read_text())
    return outcome, {c["displayName"]: c for c in status["root"]["children"]}


def cache_file(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "_configmaps" / "default" / "work-cache.json"


def ran(tmp_path: Path) -> list[str]:
    counter = tmp_path / "runs.txt"
    return counter.read_text().split() if counter.exists() else []


def test_second_run_with_the_same_key_skips_the_pod_and_reuses_outputs(tmp_path: Path) -> None:
    first, nodes = run(tmp_path, spec(), "first")
    assert first.phase == "Succeeded", first.message
    assert nodes["work"]["memoizationStatus"] == {"hit": False, "key": "part-a", "cacheName": "work-cache"}
    cm = json.loads(cache_file(tmp_path).read_text())
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["labels"] == {"workflows.argoproj.io/configmap-type": "Cache"}
    entry = json.loads(cm["data"]["part-a"])
    assert entry["nodeID"] == nodes["work"]["id"]
    assert entry["outputs"]["parameters"] == [{"name": "size", "value": "size-a"}]

    second, nodes2 = run(tmp_path, spec(), "second")
    assert second.phase == "Succeeded", second.message
    work = nodes2["work"]
    assert work["memoizationStatus"] == {"hit": True, "key": "part-a", "cacheName": "work-cache"}
    assert work["phase"] == "Succeeded" and work["type"] == "Pod" and work["podName"] is None
    assert ran(tmp_path) == ["a"], "the memoized pod ran once"
    assert work["outputs"]["parameters"] == {"size": "size-a"}
    assert work["outputs"]["artifacts"]["data"]["key"] == nodes["work"]["outputs"]["artifacts"]["data"]["key"]
    # the dependant got the cached parameter and the first run's artifact
    assert Path(nodes2["use"]["log"]).read_text().strip() == "size-a data for a"

    third, nodes3 = run(tmp_path, spec(), "third", part="b")
    assert nodes3["work"]["memoizationStatus"]["hit"] is False and ran(tmp_path) == ["a", "b"]
    assert set(json.loads(cache_file(tmp_path).read_text())["data"]) == {"part-a", "part-b"}


def test_an_entry_older_than_max_age_is_a_miss(tmp_path: Path) -> None:
    run(tmp_path, spec(max_age="10m"), "first")
    path = cache_file(tmp_path)
    cm = json.loads(path.read_text())
    entry = json.loads(cm["data"]["part-a"])
    entry["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 11 * 60))
    cm["data"]["part-a"] = json.dumps(entry)
    path.write_text(json.dumps(cm))
    outcome, nodes = run(tmp_path, spec(max_age="10m"), "second")
    assert outcome.phase == "Succeeded"
    assert nodes["work"]["memoizationStatus"]["hit"] is False and ran(tmp_path) == ["a", "a"]
    outcome, nodes = run(tmp_path, spec(max_age="10m"), "third")  # the rerun saved a fresh entry
    assert nodes["work"]["memoizationStatus"]["hit"] is True and ran(tmp_path) == ["a", "a"]


def test_a_failed_node_is_not_cached(tmp_path: Path) -> None:
    outcome, nodes = run(tmp_path, spec(fail="1"), "first")
    assert outcome.phase == "Failed" and nodes["work"]["phase"] == "Failed"
    assert not cache_file(tmp_path).exists()
    run(tmp_path, spec(fail="1"), "second")
    assert ran(tmp_path) == ["a", "a"]


def test_an_invalid_key_is_an_error_node(tmp_path: Path) -> None:
    outcome, nodes = run(tmp_path, spec(key="part/{{inputs.parameters.part}}"), "bad")
    assert outcome.phase == "Error"
    assert nodes["work"]["phase"] == "Error"
    assert "invalid cache key: part/a" in nodes["work"]["message"]
    assert ran(tmp_path) == []


def test_a_cache_without_the_cache_label_is_refused(tmp_path: Path) -> None:
    path = cache_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "work-cache"}}))
    _, nodes = run(tmp_path, spec(), "nolabel")
    assert nodes["work"]["phase"] == "Error" and "refusing to use it" in nodes["work"]["message"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("180s", 180), ("24h", 86400), ("1h30m", 5400), ("1.5h", 5400), ("300ms", 0.3), ("0", 0)]
)
def test_max_age_is_a_go_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10", "1d", "", "h"])
def test_a_bad_max_age_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_a_memoized_fan_out_skips_every_finished_partition_on_the_second_run(tmp_path: Path) -> None:
    body = spec()
    body["templates"][0]["dag"]["tasks"] = [
        {
            "name": "work",
            "template": "work",
            "withItems": ["p0", "p1", "p2", "p3"],
            "arguments": {"parameters": [{"name": "part", "value": "{{item}}"}]},
        },
        {
            "name": "sizes",
            "depends": "work",
            "template": "show",
            "arguments": {"parameters": [{"name": "sizes", "value": "{{tasks.work.outputs.parameters.size}}"}]},
        },
    ]
    body["templates"].append(
        {
            "name": "show",
            "inputs": {"parameters": [{"name": "sizes"}]},
            "container": {**PY, "args": ["import sys; print(sys.argv[1])", "{{inputs.parameters.sizes}}"]},
        }
    )
    first, nodes = run(tmp_path, body, "fan-1")
    assert first.phase == "Succeeded", first.message
    assert sorted(ran(tmp_path)) == ["p0", "p1", "p2", "p3"]
    entries = json.loads(cache_file(tmp_path).read_text())["data"]
    assert set(entries) == {"part-p0", "part-p1", "part-p2", "part-p3"}, "concurrent saves all kept"

    second, nodes2 = run(tmp_path, body, "fan-2")
    assert second.phase == "Succeeded", second.message
    children = nodes2["work"]["children"]
    assert [c["memoizationStatus"]["hit"] for c in children] == [True] * 4
    assert sorted(ran(tmp_path)) == ["p0", "p1", "p2", "p3"], "no partition ran again"
    expected = '["size-p0","size-p1","size-p2","size-p3"]'
    assert Path(nodes["sizes"]["log"]).read_text().strip() == expected
    assert Path(nodes2["sizes"]["log"]).read_text().strip() == expected


def test_a_malformed_cache_is_an_error_node_naming_the_file(tmp_path: Path) -> None:
    path = cache_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    outcome, nodes = run(tmp_path, spec(), "broken")
    assert outcome.phase == "Error" and nodes["work"]["phase"] == "Error"
    assert str(path) in nodes["work"]["message"] and ran(tmp_path) == []
