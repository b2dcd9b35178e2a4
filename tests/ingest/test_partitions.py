"""The list step of the partitioned pipeline: a many-file source → one JSON partition per file."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from stages.ingest.partitions import FIRST_PREV, digest, holdout_start
from tests.helpers import run_stage

BUCKET = "cybersec-mlops"
HOURS = {"conn.00.log": b"a" * 10, "conn.01.log": b"b" * 30, "conn.02.log": b"c" * 40, "conn.03.log": b"d" * 20}


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without service settings (no audit, no S3) unless ``extra`` gives them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "MINIO_", "RUN_ID"))}
    return {**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **(extra or {})}


def _landing(root: Path, files: dict[str, bytes] = HOURS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


@dataclass
class Listed:
    returncode: int
    stderr: str
    items: list[dict[str, Any]]  # the JSON list written to --out; empty when the step failed
    params: dict[str, str]  # output parameter files by name
    errors: list[str]  # the messages logged at level error


def _list(
    tmp_path: Path, source: str, *extra: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Listed:
    """Run the list step as a real process with fresh --out and --params-dir."""
    out, params = tmp_path / "out" / "partitions.json", tmp_path / f"params-{len(list(tmp_path.glob('params-*')))}"
    out.unlink(missing_ok=True)
    flags = ["--holdout-fraction", "0.2", "--salt", "ingest-v1", *extra]
    done = run_stage("ingest.partitions", "--source", source, "--out", str(out), "--params-dir", str(params),
                     "--log-format", "json", *flags, env=env or _env(), cwd=cwd)  # fmt: skip
    logged = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    return Listed(
        done.returncode,
        done.stderr,
        json.loads(out.read_text()) if done.returncode == 0 else [],
        {p.name: p.read_text() for p in params.iterdir()} if params.is_dir() else {},
        [e["msg"] for e in logged if e["level"] == "error"],
    )


@pytest.mark.parametrize(
    ("sizes", "fraction", "start"),
    [
        ([10, 10, 10, 10], 0.25, 3),  # the last file is exactly a quarter
        ([10, 10, 10, 10], 0.26, 2),  # just over a quarter needs two
        ([10] * 10, 0.3, 7),  # compared exactly: 0.3 of 100 bytes is 30, not 30.000000000000004
        ([1, 1, 1, 97], 0.5, 3),  # by bytes, not by file count
        ([97, 1, 1, 1], 0.5, 1),  # one file always stays for training
        ([5, 5], 0.99, 1),
        ([0, 0, 0], 0.1, 2),  # empty files: still one holdout file
    ],
)
def test_holdout_is_the_shortest_suffix_by_bytes(sizes: list[int], fraction: float, start: int) -> None:
    assert holdout_start(sizes, fraction) == start


def test_digest_is_sha256_of_a_compact_json_array() -> None:
    canonical = '["s3://b/landing/conn.00.log","9b2cf535f27731c974343645a3985328",1234,"ingest-v1 image:1.2"]'
    expected = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert digest("s3://b/landing/conn.00.log", "9b2cf535f27731c974343645a3985328", 1234, "ingest-v1 image:1.2") == (
        expected
    )


def test_folder_lists_files_in_order_with_chained_raw_keys(tmp_path: Path) -> None:
    landing = _landing(tmp_path / "landing")
    (landing / ".conn.04.log.part").write_bytes(b"half an upload")
    done = _list(tmp_path, str(landing))
    assert done.returncode == 0, done.stderr
    items = done.items
    assert [i["source"] for i in items] == [str(landing / n) for n in sorted(HOURS)]
    assert [i["k"] for i in items] == ["00000", "00001", "00002", "00003"]
    assert [i["size"] for i in items] == [10, 30, 40, 20]
    assert [i["etag"] for i in items] == [hashlib.sha256(HOURS[n]).hexdigest() for n in sorted(HOURS)]
    # 20 of 100 bytes is the last file alone
    assert [i["split"] for i in items] == ["train", "train", "train", "holdout"]
    for item in items:
        assert len(item["digest"]) == 16 and int(item["digest"], 16) >= 0
        assert item["raw"] == f"raw/parts/{item['digest']}/flows.parquet"
    assert len({i["digest"] for i in items}) == 4
    assert [i["prev"] for i in items] == [FIRST_PREV, *(i["raw"] for i in items[:-1])]

    text = (tmp_path / "out" / "partitions.json").read_text()
    assert done.params == {
        "partitions": text.rstrip("\n"),
        "holdout": json.dumps(items[-1:], separators=(",", ":")),
        "count": "4",
        "train_count": "3",
        "holdout_count": "1",
    }
    assert "\n" not in done.params["partitions"]


def test_holdout_suffix_by_bytes_through_the_cli(tmp_path: Path) -> None:
    landing = _landing(tmp_path / "landing")
    done = _list(tmp_path, f"{landing}/conn.*.log", "--holdout-fraction", "0.6")  # the later flag wins
    assert done.returncode == 0, done.stderr
    assert [i["split"] for i in done.items] == ["train", "train", "holdout", "holdout"]  # 40 + 20 >= 60
    assert done.params["train_count"] == "2" and done.params["holdout_count"] == "2"
    done = _list(tmp_path, str(landing), "--holdout-fraction", "0.99")
    assert [i["split"] for i in done.items] == ["train", "holdout", "holdout", "holdout"]


def test_digest_is_stable_and_follows_content_and_salt(tmp_path: Path) -> None:
    landing = _landing(tmp_path / "landing")
    first = _list(tmp_path, str(landing)).items
    assert _list(tmp_path, str(landing)).items == first
    # the same folder named relative to another working directory: the same absolute sources and digests
    assert _list(tmp_path, "landing", cwd=tmp_path).items == first

    (landing / "conn.01.log").write_bytes(b"B" * 30)  # same size, same name, new content
    changed = _list(tmp_path, str(landing)).items
    assert [a["digest"] == b["digest"] for a, b in zip(first, changed, strict=True)] == [True, False, True, True]
    assert changed[2]["prev"] == changed[1]["raw"] != first[1]["raw"]

    salted = _list(tmp_path, str(landing), "--salt", "ingest-v2").items
    assert not {i["digest"] for i in salted} & {i["digest"] for i in changed}


def _fails(done: Listed, *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    message = "\n".join(done.errors)
    for fragment in fragments:
        assert fragment in message, message
    assert not done.items and not done.params


def test_fewer_than_two_files_or_an_empty_source_exit_2(tmp_path: Path) -> None:
    landing = _landing(tmp_path / "landing")
    glob = f"{landing}/conn.00.*"
    _fails(_list(tmp_path, glob), f"{glob}: only one file ({landing / 'conn.00.log'})", "single-pod pipeline")
    one = str(landing / "conn.00.log")
    _fails(_list(tmp_path, one), f"{one}: names one file", "single-pod pipeline")
    _fails(_list(tmp_path, "synthetic://?rows=100"), "synthetic://?rows=100: a synthetic stream", "single-pod")

    (tmp_path / "empty").mkdir()
    _fails(_list(tmp_path, str(tmp_path / "empty")), f"{tmp_path / 'empty'}: the folder holds no files")
    missing = str(tmp_path / "no-such-day")
    _fails(_list(tmp_path, missing), f"{missing}: no such file or folder")


def test_too_many_files_exit_2_naming_the_count_and_the_flag(tmp_path: Path) -> None:
    landing = _landing(tmp_path / "landing")
    _fails(_list(tmp_path, str(landing), "--max-partitions", "3"), f"{landing}: 4 files", "--max-partitions 3")
    assert _list(tmp_path, str(landing), "--max-partitions", "4").returncode == 0


@pytest.mark.parametrize(("flag", "value"), [("--holdout-fraction", "0"), ("--holdout-fraction", "1"),
                                             ("--max-partitions", "0")])  # fmt: skip
def test_bad_flags_exit_2(tmp_path: Path, flag: str, value: str) -> None:
    done = _list(tmp_path, str(_landing(tmp_path / "landing")), flag, value)
    assert done.returncode == 2 and f"argument {flag}: {value!r}" in done.stderr


@pytest.mark.services
def test_s3_prefix_uses_etags_and_is_audited(
    tmp_path: Path, stage_env: dict[str, str], s3_server: dict[str, str], audit_db: Any
) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server["MINIO_ENDPOINT"],
        aws_access_key_id=s3_server["MINIO_ACCESS_KEY"],
        aws_secret_access_key=s3_server["MINIO_SECRET_KEY"],
        region_name="us-east-1",
    )
    for name, data in reversed(HOURS.items()):
        s3.put_object(Bucket=BUCKET, Key=f"parts/landing/2026-11-28/{name}", Body=data)
    s3.put_object(Bucket=BUCKET, Key="parts/landing/2026-11-29/conn.00.log", Body=b"next day")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="parts/landing/2026-11-28/")["Contents"]
    etags = {f"s3://{BUCKET}/{o['Key']}": o["ETag"].strip('"') for o in listed}

    env = _env({**stage_env, **s3_server, "RUN_ID": "partitions-s3"})
    prefix = f"s3://{BUCKET}/parts/landing/2026-11-28/"
    done = _list(tmp_path, prefix, env=env)
    assert done.returncode == 0 and done.items, done.stderr
    assert [i["source"] for i in done.items] == [prefix + n for n in sorted(HOURS)]
    assert [i["etag"] for i in done.items] == [etags[prefix + n] for n in sorted(HOURS)]
    assert [i["split"] for i in done.items] == ["train", "train", "train", "holdout"]
    with audit_db.cursor() as cur:
        cur.execute(
            "SELECT s.status, a.direction, a.name, a.uri, a.bytes FROM stage_attempts s JOIN stage_artifacts a "
            "USING (run_id, stage, attempt) WHERE run_id = %s AND stage = %s ORDER BY 2, 3",
            ("partitions-s3", "ingest-partitions"),
        )
        assert cur.fetchall() == [
            *(("SUCCEEDED", "input", f"source-{k}", prefix + n, len(HOURS[n])) for k, n in enumerate(sorted(HOURS))),
            (
                "SUCCEEDED",
                "output",
                "partitions",
                str(tmp_path / "out" / "partitions.json"),
                (tmp_path / "out" / "partitions.json").stat().st_size,
            ),
        ]

    glob = _list(tmp_path, f"s3://{BUCKET}/parts/landing/2026-11-2*/conn.0[0-3].log", env=env)
    assert glob.items and [i["source"] for i in glob.items] == [
        *(prefix + n for n in sorted(HOURS)),
        f"s3://{BUCKET}/parts/landing/2026-11-29/conn.00.log",
    ]
    _fails(_list(tmp_path, f"s3://{BUCKET}/parts/landing/2025-01-01/", env=env), "no objects under this prefix")
