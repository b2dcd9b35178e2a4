"""Directory (key prefix) input artifacts, optional inputs that are absent, templated keys, and a
partitioned run end to end: list -> memoized fan-out -> per-item fan-out -> fan-in of a prefix.

Argo's S3 driver (``loadS3Artifact``) decides what a key is: an object with exactly that key is
a file; otherwise the objects under ``<key>/`` are a directory; otherwise the key is not found,
which skips an optional input (``Skipping optional input artifact that was not found``) and
fails a required one.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflows.localargo.artifacts import ArtifactNotFound, LocalRepository, S3Repository, open_repository
from workflows.localargo.engine import Outcome, RunOptions, run_workflow
from workflows.localargo.errors import ExecutorError

BUCKET = "cybersec-mlops"
PY = {"image": "python:3.11-slim", "command": ["python", "-c"]}


def files(root: Path) -> dict[str, str]:
    """Every file below ``root`` as ``{relative path: text}``."""
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


# --- the repositories: file, directory or not found -------------------------------------------


def put_local(root: Path, objects: dict[str, str]) -> LocalRepository:
    for key, text in objects.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_text(text)
    return LocalRepository(root)


def s3_repo(env: dict[str, str], prefix: str, objects: dict[str, str]) -> S3Repository:
    repo = open_repository(f"s3://{BUCKET}", env)
    assert isinstance(repo, S3Repository)
    for key, text in objects.items():
        repo.client.put_object(Bucket=BUCKET, Key=f"{prefix}/{key}", Body=text.encode())
    return repo


PARTS = {
    "silver/run/part=00000/features.parquet": "f0",
    "silver/run/part=00000/manifest.json": "m0",
    "silver/run/part=00001/features.parquet": "f1",
    "silver/run2/part=00009/features.parquet": "other run",  # shares the text prefix, not the directory
}


def test_a_local_directory_key_is_staged_recursively(tmp_path: Path) -> None:
    repo = put_local(tmp_path / "repo", {**PARTS, "silver/run/.features.parquet.abc.part": "half-written"})
    repo.get("silver/run", tmp_path / "out")
    assert files(tmp_path / "out") == {
        "part=00000/features.parquet": "f0",
        "part=00000/manifest.json": "m0",
        "part=00001/features.parquet": "f1",
    }
    repo.get("silver/run/part=00001/features.parquet", tmp_path / "one")
    assert (tmp_path / "one").read_text() == "f1"


@pytest.mark.parametrize("key", ["silver/none", "silver/ru", "silver/empty"])
def test_a_local_key_with_no_file_and_no_files_under_it_is_not_found(tmp_path: Path, key: str) -> None:
    repo = put_local(tmp_path / "repo", PARTS)
    (tmp_path / "repo" / "silver" / "empty" / "sub").mkdir(parents=True)  # directories without files
    with pytest.raises(ArtifactNotFound, match=f"{key}: no such artifact"):
        repo.get(key, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_s3_prefix_is_listed_and_every_object_downloaded(tmp_path: Path, s3_server: dict[str, str]) -> None:
    repo = s3_repo(s3_server, "t1", {**PARTS, "silver/run/": ""})  # a console-made "folder" object is skipped
    repo.get("t1/silver/run", tmp_path / "out")
    assert files(tmp_path / "out") == {
        "part=00000/features.parquet": "f0",
        "part=00000/manifest.json": "m0",
        "part=00001/features.parquet": "f1",
    }


def test_an_s3_object_with_exactly_the_key_wins_over_the_prefix(tmp_path: Path, s3_server: dict[str, str]) -> None:
    repo = s3_repo(s3_server, "t2", {"data": "the object", "data/inner.txt": "under the prefix"})
    repo.get("t2/data", tmp_path / "out")
    assert (tmp_path / "out").read_text() == "the object"


@pytest.mark.parametrize("key", ["t3/silver/none", "t3/silver/ru"])
def test_an_s3_key_with_no_object_and_no_objects_under_it_is_not_found(
    tmp_path: Path, s3_server: dict[str, str], key: str
) -> None:
    repo = s3_repo(s3_server, "t3", PARTS)
    with pytest.raises(ArtifactNotFound, match=f"s3://{BUCKET}/{key}: not found"):
        repo.get(key, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_s3_object_key_that_climbs_out_of_the_prefix_is_refused(tmp_path: Path, s3_server: dict[str, str]) -> None:
    repo = s3_repo(s3_server, "t4", {"dir/../../escape.txt": "x"})
    with pytest.raises(ExecutorError, match=r"illegal object key 't4/dir/\.\./\.\./escape\.txt'"):
        repo.get("t4/dir", tmp_path / "out" / "staged")
    assert not (tmp_path / "out" / "escape.txt").exists()


# --- the executor: optional inputs, templated keys, a partitioned run ------------------------


def run(
    tmp_path: Path, spec: dict[str, Any], repo: str | None = None, env: dict[str, str] | None = None
) -> tuple[Outcome, dict[str, dict[str, Any]]]:
    doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "parts-"}}
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump({**doc, "spec": spec}, sort_keys=False))
    opts = RunOptions(
        manifest=path,
        workdir=tmp_path / "runs",
        artifacts=repo or str(tmp_path / "artifacts"),
        extra_env=env or {},
        parameters={"counter": str(tmp_path / "ingested.txt")},
    )
    outcome = run_workflow(opts, out=io.StringIO())
    found: dict[str, dict[str, Any]] = {}

    def walk(node: dict[str, Any]) -> None:
        for child in node["children"]:
            found[child["displayName"]] = child
            walk(child)

    root = json.loads(outcome.status_path.read_text())["root"]
    found[root["displayName"]] = root
    walk(root)
    return outcome, found


def log_of(node: dict[str, Any]) -> str:
    return Path(node["log"]).read_text().strip()


def read_prev(arg: int) -> str:
    """Python reading the optional input at ``sys.argv[arg]`` into ``prev``, or saying whether its path exists."""
    return (
        f"import os, sys; p = sys.argv[{arg}]; prev = open(p).read() if os.path.exists(p) else "
        "'no path' if not os.path.lexists(os.path.dirname(p)) else 'bare dir'; "
    )


# reads a required and an optional input
READ_BOTH = read_prev(2) + "print(open(sys.argv[1]).read() + '|prev=' + prev)"


def reader(prev_key: str, required_key: str = "in/data.txt") -> dict[str, Any]:
    return {
        "entrypoint": "read",
        "arguments": {"parameters": [{"name": "counter"}, {"name": "prev-key", "value": prev_key}]},
        "templates": [
            {
                "name": "read",
                "inputs": {
                    "parameters": [{"name": "prev-key", "value": "{{workflow.parameters.prev-key}}"}],
                    "artifacts": [
                        {"name": "data", "path": "/tmp/inputs/data/data.txt", "s3": {"key": required_key}},
                        {
                            "name": "prev",
                            "path": "/tmp/inputs/prev/flows.txt",
                            "optional": True,
                            "s3": {"key": "{{inputs.parameters.prev-key}}"},
                        },
                    ],
                },
                "container": {**PY, "args": [READ_BOTH, "/tmp/inputs/data/data.txt", "/tmp/inputs/prev/flows.txt"]},
            }
        ],
    }


def test_an_optional_input_that_is_not_found_is_skipped_and_its_path_not_created(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    put_local(tmp_path / "artifacts", {"in/data.txt": "data", "raw/parts/a/flows.txt": "flows a"})
    with caplog.at_level(logging.INFO, logger="workflows.localargo.pod"):
        outcome, nodes = run(tmp_path, reader("raw/parts/none/flows.txt"))
    assert outcome.phase == "Succeeded", outcome.message
    assert log_of(nodes[outcome.name]) == "data|prev=no path"
    skipped = [r.getMessage() for r in caplog.records if "skipping optional input artifact" in r.getMessage()]
    assert len(skipped) == 1 and "prev" in skipped[0] and "raw/parts/none/flows.txt" in skipped[0]

    outcome, nodes = run(tmp_path, reader("raw/parts/a/flows.txt"))  # the key from inputs.parameters resolves
    assert outcome.phase == "Succeeded", outcome.message
    assert log_of(nodes[outcome.name]) == "data|prev=flows a"


def test_a_required_input_that_is_not_found_fails_the_node_naming_the_key(tmp_path: Path) -> None:
    put_local(tmp_path / "artifacts", {"in/data.txt": "data"})
    outcome, nodes = run(tmp_path, reader("raw/parts/none/flows.txt", required_key="in/no-such.txt"))
    assert outcome.phase == "Error" and outcome.exit_code == 1
    node = nodes[outcome.name]
    assert node["message"].startswith("failed to load artifacts: inputs.artifacts.data: ")
    assert "in/no-such.txt: no such artifact in the local repository" in node["message"]


# A partitioned pipeline in miniature: the list step prints the partitions as JSON; ingest
# (memoized on the partition's digest) writes each to its content-addressed key; silver reads
# its partition and the previous one's (optional: none before the first) and writes a part
# under the run's prefix; train reads the whole prefix as one directory.
INGEST = (
    "import sys; open(sys.argv[2], 'a').write(sys.argv[1] + '\\n'); "
    "open(sys.argv[3], 'w').write('flows of ' + sys.argv[1])"
)
SILVER = read_prev(3) + "open(sys.argv[4], 'w').write(sys.argv[1] + ':' + open(sys.argv[2]).read() + '|prev=' + prev)"
TRAIN = (
    "import json, os, sys; root = sys.argv[1]; "
    "print(json.dumps({os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f)).read() "
    "for d, _, fs in os.walk(root) for f in fs}, sort_keys=True))"
)
NONE = "raw/parts/none/flows.txt"


def partitions(count: int) -> list[dict[str, str]]:
    items, prev = [], NONE
    for i in range(count):
        digest = f"{i:016x}"
        raw = f"raw/parts/{digest}/flows.txt"
        items.append({"k": f"{i:05d}", "digest": digest, "raw": raw, "prev": prev})
        prev = raw
    return items


def partitioned(items: list[dict[str, str]]) -> dict[str, Any]:
    none: dict[str, Any] = {"archive": {"none": {}}}
    loop = {"withParam": "{{tasks.list.outputs.result}}"}
    return {
        "entrypoint": "main",
        "arguments": {"parameters": [{"name": "counter"}]},
        "templates": [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {"name": "list", "template": "list"},
                        {
                            "name": "ingest",
                            "depends": "list",
                            "template": "ingest",
                            **loop,
                            "arguments": {
                                "parameters": [
                                    {"name": "digest", "value": "{{item.digest}}"},
                                    {"name": "raw-key", "value": "{{item.raw}}"},
                                    {"name": "source", "value": "{{item.k}}"},
                                ]
                            },
                        },
                        {
                            "name": "silver",
                            "depends": "ingest",
                            "template": "silver",
                            **loop,
                            "arguments": {
                                "parameters": [
                                    {"name": "k", "value": "{{item.k}}"},
                                    {"name": "prev-key", "value": "{{item.prev}}"},
                                ],
                                "artifacts": [{"name": "raw", "s3": {"key": "{{item.raw}}"}}],
                            },
                        },
                        {"name": "train", "depends": "silver", "template": "train"},
                    ]
                },
            },
            {
                "name": "list",
                "script": {
                    "image": "python:3.11-slim",
                    "command": ["python"],
                    "source": f"import json\nprint(json.dumps({json.dumps(items)}))\n",
                },
            },
            {
                "name": "ingest",
                "inputs": {"parameters": [{"name": "digest"}, {"name": "raw-key"}, {"name": "source"}]},
                "memoize": {
                    "key": "ingest-{{inputs.parameters.digest}}",
                    "maxAge": "1h",
                    "cache": {"configMap": {"name": "ingest-cache"}},
                },
                "outputs": {
                    "artifacts": [
                        {
                            "name": "raw",
                            "path": "/tmp/outputs/flows.txt",
                            **none,
                            "s3": {"key": "{{inputs.parameters.raw-key}}"},
                        }
                    ]
                },
                "container": {
                    **PY,
                    "args": [
                        INGEST,
                        "{{inputs.parameters.source}}",
                        "{{workflow.parameters.counter}}",
                        "/tmp/outputs/flows.txt",
                    ],
                },
            },
            {
                "name": "silver",
                "inputs": {
                    "parameters": [{"name": "k"}, {"name": "prev-key"}],
                    "artifacts": [
                        {"name": "raw", "path": "/tmp/inputs/raw/flows.txt", **none},
                        {
                            "name": "prev",
                            "path": "/tmp/inputs/prev/flows.txt",
                            "optional": True,
                            **none,
                            "s3": {"key": "{{inputs.parameters.prev-key}}"},
                        },
                    ],
                },
                "outputs": {
                    "artifacts": [
                        {
                            "name": "features",
                            "path": "/tmp/outputs/features.txt",
                            **none,
                            "s3": {"key": "silver/{{workflow.name}}/part={{inputs.parameters.k}}/features.txt"},
                        }
                    ]
                },
                "container": {
                    **PY,
                    "args": [
                        SILVER,
                        "{{inputs.parameters.k}}",
                        "/tmp/inputs/raw/flows.txt",
                        "/tmp/inputs/prev/flows.txt",
                        "/tmp/outputs/features.txt",
                    ],
                },
            },
            {
                "name": "train",
                "inputs": {
                    "artifacts": [
                        {
                            "name": "silver",
                            "path": "/tmp/inputs/silver",
                            **none,
                            "s3": {"key": "silver/{{workflow.name}}"},
                        }
                    ]
                },
                "container": {**PY, "args": [TRAIN, "/tmp/inputs/silver"]},
            },
        ],
    }


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_rerun_skips_memoized_partitions_and_the_fan_in_reads_the_run_prefix(
    tmp_path: Path, request: pytest.FixtureRequest, where: str
) -> None:
    env: dict[str, str] = request.getfixturevalue("s3_server") if where == "s3" else {}
    repo = f"s3://{BUCKET}" if where == "s3" else None
    items = partitions(3)
    spec = partitioned(items)
    expected = {
        "part=00000/features.txt": "00000:flows of 00000|prev=no path",
        "part=00001/features.txt": "00001:flows of 00001|prev=flows of 00000",
        "part=00002/features.txt": "00002:flows of 00002|prev=flows of 00001",
    }

    first, nodes = run(tmp_path, spec, repo, env)
    assert first.phase == "Succeeded", first.message
    ingest = [nodes["ingest"]["children"][i] for i in range(3)]
    assert [n["memoizationStatus"]["hit"] for n in ingest] == [False] * 3
    assert [n["outputs"]["artifacts"]["raw"]["key"] for n in ingest] == [item["raw"] for item in items]
    assert json.loads(log_of(nodes["train"])) == expected

    second, nodes2 = run(tmp_path, spec, repo, env)
    assert second.phase == "Succeeded", second.message
    assert second.name != first.name
    ingest2 = nodes2["ingest"]["children"]
    assert [n["memoizationStatus"] for n in ingest2] == [
        {"hit": True, "key": f"ingest-{item['digest']}", "cacheName": "ingest-cache"} for item in items
    ]
    assert [n["podName"] for n in ingest2] == [None] * 3, "no ingest pod ran again"
    assert [n["outputs"]["artifacts"]["raw"]["key"] for n in ingest2] == [item["raw"] for item in items]
    assert sorted((tmp_path / "ingested.txt").read_text().split()) == ["00000", "00001", "00002"]
    # silver of the second run read the first run's raw objects and wrote under its own prefix
    assert json.loads(log_of(nodes2["train"])) == expected
    assert nodes2["train"]["phase"] == "Succeeded"
    if where == "local":
        assert files(tmp_path / "artifacts" / "silver" / second.name) == expected
