"""A source that is many files: a local folder, a glob, an S3 prefix or glob, read into one RAW output."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

from stages.ingest.sources import _match, is_many
from tests.helpers import run_stage

from .conftest import BADINPUT, FIXTURES

BUCKET = "cybersec-mlops"


def _landing(root: Path) -> dict[str, Path]:
    """Three days of hourly logs in three formats, plus files a glob must leave out."""
    files = {
        "2026-11-27/conn.00.log": FIXTURES / "conn.log",
        "2026-11-28/conn.01.log.gz": BADINPUT / "negative-bytes.log",  # 2 good rows, 2 rejected
        "2026-11-28/conn.00.log.gz": FIXTURES / "iot23-conn.log.labeled",
        "2026-11-29/conn.00.log": FIXTURES / "conn.json",
        "2026-11-28/dns.00.log": FIXTURES / "conn.log",  # not conn.*
        "2026-11-17/conn.00.log.gz": FIXTURES / "conn.log",  # not 2026-11-2*
    }
    for name, src in files.items():
        dest = root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        data = src.read_bytes()
        dest.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
    return {name: root / name for name in files}


def _run(tmp_path: Path, source: str, env: dict[str, str] | None = None, *extra: str) -> Any:
    out = tmp_path / "out"
    return run_stage(
        "ingest",
        "--source",
        source,
        "--output",
        str(out / "flows.parquet"),
        "--rejects",
        str(out / "rejects.parquet"),
        "--manifest",
        str(out / "manifest.json"),
        "--max-reject-fraction",
        "0.5",
        "--log-format",
        "json",
        *extra,
        env=env,
    )


def _single(tmp_path: Path, path: Path) -> Any:
    out = tmp_path / "single" / path.name
    done = run_stage(
        "ingest",
        "--source",
        str(path),
        "--output",
        str(out / "flows.parquet"),
        "--rejects",
        str(out / "rejects.parquet"),
        "--max-reject-fraction",
        "0.5",
    )
    assert done.returncode == 0, done.stderr
    return pq.read_table(out / "flows.parquet"), pq.read_table(out / "rejects.parquet")


def test_is_many_and_glob_matching(tmp_path: Path) -> None:
    (tmp_path / "a[1].log").write_text("x")
    assert is_many(str(tmp_path)) and is_many(f"{tmp_path}/*.log") and is_many("s3://b/landing/")
    assert is_many("s3://b/landing/2026-11-2*/conn.*.log.gz") and is_many("s3://b")
    assert not is_many(str(tmp_path / "a[1].log")) and not is_many("s3://b/landing/conn.log")
    assert not is_many("synthetic://?rows=10")
    pattern = "landing/2026-11-2*/conn.*.log.gz"
    assert _match("landing/2026-11-28/conn.01.log.gz", pattern)
    assert not _match("landing/2026-11-28/deeper/conn.01.log.gz", pattern)  # '*' stays within its part
    assert not _match("landing/2026-11-17/conn.01.log.gz", pattern)
    assert _match("landing/2026-11-28/deeper/conn.01.log.gz", "landing/**/conn.*.log.gz")


def test_local_glob_reads_matching_files_in_sorted_order(tmp_path: Path) -> None:
    files = _landing(tmp_path / "landing")
    done = _run(tmp_path, f"{tmp_path}/landing/2026-11-2*/conn.*.log*")
    assert done.returncode == 0, done.stderr
    picked = sorted(n for n in files if n.startswith("2026-11-2") and "/conn." in n)
    flows = pq.read_table(tmp_path / "out" / "flows.parquet")
    rejects = pq.read_table(tmp_path / "out" / "rejects.parquet")

    # the same rows, in the same order, as ingesting each file on its own one after another
    alone = [_single(tmp_path, files[n]) for n in picked]
    assert flows.drop_columns(["source"]).to_pylist() == [
        r for f, _ in alone for r in f.drop_columns(["source"]).to_pylist()
    ]
    assert flows.column("source").to_pylist() == [
        str(files[n]) for n, (f, _) in zip(picked, alone, strict=True) for _ in range(f.num_rows)
    ]
    # each rejected row names its file and its line there
    bad = str(files["2026-11-28/conn.01.log.gz"])
    assert [(r["source"], r["line"], r["reason"]) for r in rejects.to_pylist()] == [
        (bad, 10, "negative value"),
        (bad, 11, "negative value"),
    ]

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [f["key"] for f in manifest["files"]] == [str(files[n]) for n in picked]
    for entry, name in zip(manifest["files"], picked, strict=True):
        path = files[name]
        assert entry["bytes"] == path.stat().st_size
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [f["rows"] for f in manifest["files"]] == [f.num_rows for f, _ in alone]
    assert sum(f["rejected"] for f in manifest["files"]) == 2 and manifest["rows"] == flows.num_rows


def test_local_folder_and_empty_sources(tmp_path: Path) -> None:
    files = _landing(tmp_path / "landing")
    (tmp_path / "landing" / "2026-11-28" / ".conn.02.log.part").write_text("half an upload")
    done = _run(tmp_path, str(tmp_path / "landing" / "2026-11-28"))
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [f["key"] for f in manifest["files"]] == [
        str(files[n]) for n in ("2026-11-28/conn.00.log.gz", "2026-11-28/conn.01.log.gz", "2026-11-28/dns.00.log")
    ]

    (tmp_path / "empty").mkdir()
    for source, what in (
        (str(tmp_path / "empty"), "the folder holds no files"),
        (f"{tmp_path}/landing/2025-*/conn.*.log", "no files match this glob"),
    ):
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        done = _run(tmp_path, source)
        assert done.returncode == 2 and f"{source}: {what}" in done.stderr, done.stderr
        assert not (tmp_path / "out" / "flows.parquet").exists()


def test_a_bad_file_fails_the_run_and_is_named(tmp_path: Path) -> None:
    _landing(tmp_path / "landing")
    bad = tmp_path / "landing" / "2026-11-28" / "conn.02.log"
    shutil.copy(BADINPUT / "no-fields.log", bad)
    done = _run(tmp_path, f"{tmp_path}/landing/2026-11-28/conn.*")
    assert done.returncode == 2 and f"{bad} line 7: data before any #fields header line" in done.stderr
    assert not (tmp_path / "out" / "flows.parquet").exists()


@pytest.mark.services
def test_s3_prefix_and_glob(tmp_path: Path, stage_env: dict[str, str], s3_server: dict[str, str]) -> None:
    env = {**stage_env, **s3_server}
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server["MINIO_ENDPOINT"],
        aws_access_key_id=s3_server["MINIO_ACCESS_KEY"],
        aws_secret_access_key=s3_server["MINIO_SECRET_KEY"],
        region_name="us-east-1",
    )
    files = _landing(tmp_path / "landing")
    for name, path in files.items():
        s3.upload_file(str(path), BUCKET, f"many/landing/{name}")
    etags = {o["Key"]: o["ETag"].strip('"') for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="many/")["Contents"]}

    done = _run(tmp_path, f"s3://{BUCKET}/many/landing/2026-11-28/", env)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    keys = [f"many/landing/2026-11-28/{n}" for n in ("conn.00.log.gz", "conn.01.log.gz", "dns.00.log")]
    assert [f["key"] for f in manifest["files"]] == keys
    assert [f["etag"] for f in manifest["files"]] == [etags[k] for k in keys]
    assert [f["bytes"] for f in manifest["files"]] == [files[k.split("landing/")[1]].stat().st_size for k in keys]
    rejects = pq.read_table(tmp_path / "out" / "rejects.parquet")
    assert set(rejects.column("source").to_pylist()) == {f"s3://{BUCKET}/many/landing/2026-11-28/conn.01.log.gz"}

    done = _run(tmp_path, f"s3://{BUCKET}/many/landing/2026-11-2*/conn.*.log.gz", env)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [f["key"] for f in manifest["files"]] == [
        "many/landing/2026-11-28/conn.00.log.gz",
        "many/landing/2026-11-28/conn.01.log.gz",
    ]
    flows = pq.read_table(tmp_path / "out" / "flows.parquet")
    assert flows.num_rows == 7 + 2 and flows.column("source").to_pylist()[-1].endswith("conn.01.log.gz")

    for source, what in (
        (f"s3://{BUCKET}/many/landing/2025-01-01/", "no objects under this prefix"),
        (f"s3://{BUCKET}/many/landing/2025-*/conn.*", "no objects match this glob"),
    ):
        done = _run(tmp_path, source, env)
        assert done.returncode == 2 and f"{source}: {what}" in done.stderr, done.stderr

    s3.upload_file(str(BADINPUT / "no-fields.log"), BUCKET, "many/bad/conn.00.log")
    done = _run(tmp_path, f"s3://{BUCKET}/many/bad/", env)
    assert done.returncode == 2 and f"s3://{BUCKET}/many/bad/conn.00.log line 7: data before" in done.stderr


def test_files_are_fetched_one_at_a_time(tmp_path: Path) -> None:
    """Bounded memory and disk: a file is fetched only when the writer asks for its first chunk."""
    import argparse

    from stages.common.config import Settings
    from stages.common.runner import StageContext
    from stages.common.storage import Storage
    from stages.ingest.sources import list_files, read_files

    _landing(tmp_path / "landing")
    fetched: list[str] = []

    class Recording(Storage):
        def fetch(self, uri: str) -> Path:
            fetched.append(uri)
            return super().fetch(uri)

    settings = Settings.from_env()
    ctx = StageContext("ingest", argparse.Namespace(), settings, Recording(settings), None)
    files = list_files(f"{tmp_path}/landing/2026-11-2*/conn.*", ctx.storage)
    chunks = read_files(ctx, files, "auto", None, None)
    assert fetched == []
    next(chunks)
    assert fetched == [files[0].uri]
    rest = list(chunks)
    assert fetched == [f.uri for f in files] and len(rest) == len(files) - 1
    assert [a.name for a in ctx.artifacts] == ["source-0", "source-1", "source-2", "source-3"]
