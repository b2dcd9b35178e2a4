"""``python -m stages.ingest.partitions``: the list step of the partitioned pipeline.

Lists the files of a many-file source (a folder, a glob, an S3 prefix or glob — see
``sources.py``) in sorted order, which is time order for hourly ``conn.*.log`` files, and
writes one JSON object per file for Argo's ``withParam`` fan-out::

    {"k": "00000", "source": "<file uri>", "etag": "...", "size": 123,
     "digest": "<16 hex>", "raw": "raw/parts/<digest>/flows.parquet",
     "prev": "<raw key of the previous partition, or raw/parts/none/flows.parquet>",
     "split": "train" | "holdout"}

``etag`` is the S3 ETag, or the sha256 of a local file. ``digest`` is the first 16 hex
digits of the sha256 of the compact JSON array ``[source, etag, size, salt]``: the salt
carries the ingest options and the image tag, so a changed file, option or image gives a
new digest, and an unchanged one the same raw key, which lets re-runs share memoized
partitions (raw keys are content-addressed, not per run).

The holdout is the shortest suffix of files holding at least ``--holdout-fraction`` of
all bytes (at least one file, leaving at least one for training).

Output parameters: ``partitions`` (the JSON list, one line), ``holdout`` (its holdout
objects: eval's fan-out), ``count``, ``train_count``, ``holdout_count``. Exit 2 when the source is not many files, names fewer than 2 files
(use the single-pod pipeline) or more than ``--max-partitions``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import time
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from stages.common.errors import InputError
from stages.common.runner import StageContext, main_exit, run_stage

if TYPE_CHECKING:
    from .sources import SourceFile

__all__ = ["FIRST_PREV", "build_parser", "positive_int", "digest", "holdout_start", "plan", "main"]

log = logging.getLogger("stages.ingest.partitions")

FIRST_PREV = "raw/parts/none/flows.parquet"  # the first partition has no previous one to look back into
_PROGRESS_SECONDS = 10.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m stages.ingest.partitions",
        description="List the files of a many-file source as partitions (JSON, one object per file, in sorted "
        "order) for the partitioned pipeline's fan-out: each with its content digest, content-addressed raw key, "
        "the previous partition's raw key and its train/holdout side.",
    )
    p.add_argument(
        "--source",
        required=True,
        help="a folder 'landing/2026-11-28/', a glob 'landing/2026-11-2*/conn.*.log.gz' ('**' spans folders), "
        "an S3 prefix 's3://bucket/landing/2026-11-28/' (ends with '/') or an S3 glob "
        "'s3://bucket/landing/2026-11-2*/conn.*.log.gz'; files sort by name, which must be time order. "
        "One file or an empty source exits 2",
    )
    p.add_argument(
        "--holdout-fraction",
        type=_open_fraction,
        required=True,
        metavar="F",
        help="the holdout is the shortest suffix of files (the latest) holding at least this share of all bytes, "
        "at least one file, and always leaving one file for training; 0 < F < 1",
    )
    p.add_argument(
        "--salt",
        required=True,
        metavar="TEXT",
        help="mixed into every digest: the ingest options and image tag, so changing either gives new raw keys "
        "(and no stale memoized partition is reused)",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="where the JSON list goes (path or URI)")
    p.add_argument(
        "--max-partitions",
        type=positive_int,
        default=1000,
        metavar="N",
        help="exit 2 when the source holds more files than this (default 1000): Argo keeps the list in a node "
        "output, so a longer one is better split by a dated prefix or glob into several runs",
    )
    return p


def _open_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction strictly between 0 and 1")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def digest(uri: str, tag: str, size: int, salt: str) -> str:
    """16 hex digits naming one partition's content: sha256 of the compact JSON ``[uri, tag, size, salt]``."""
    canonical = json.dumps([uri, tag, size, salt], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def holdout_start(sizes: list[int], fraction: float) -> int:
    """Index of the first holdout file: the shortest suffix of at least ``fraction`` of all bytes.

    At least one file is holdout and at least one is train (``len(sizes) >= 2``). The
    share is compared exactly (``0.3`` of 10 bytes is 3 bytes, not 3.0000000000000004).
    """
    need = Fraction(str(fraction)) * sum(sizes)
    start, tail = len(sizes), 0
    while start > 1 and (start == len(sizes) or tail < need):
        start -= 1
        tail += sizes[start]
    return start


def plan(files: list[tuple[str, str, int]], fraction: float, salt: str) -> list[dict[str, Any]]:
    """The partition list for ``(uri, tag, size)`` files in time order (at least 2)."""
    first_holdout = holdout_start([size for _, _, size in files], fraction)
    width = max(5, len(str(len(files) - 1)))
    items: list[dict[str, Any]] = []
    prev = FIRST_PREV
    for k, (uri, tag, size) in enumerate(files):
        d = digest(uri, tag, size, salt)
        raw = f"raw/parts/{d}/flows.parquet"
        split = "holdout" if k >= first_holdout else "train"
        items.append(
            {
                "k": f"{k:0{width}d}",
                "source": uri,
                "etag": tag,
                "size": size,
                "digest": d,
                "raw": raw,
                "prev": prev,
                "split": split,
            }
        )
        prev = raw
    return items


def _not_many(source: str) -> InputError:
    """Why a source that is not a folder, glob or S3 prefix/glob cannot be partitioned, and what to do."""
    single = "to ingest one file or a synthetic:// stream, use the single-pod pipeline (python -m stages.ingest)"
    if source.startswith("synthetic://"):
        return InputError(f"{source}: a synthetic stream is not files to partition; {single}")
    if "://" not in source or source.startswith("file://"):
        if not os.path.exists(source.removeprefix("file://")):
            return InputError(f"{source}: no such file or folder; give a folder, a glob or an S3 prefix/glob")
    return InputError(f"{source}: names one file, not a folder, glob or S3 prefix/glob; {single}")


def _tags(ctx: StageContext, files: list[SourceFile]) -> list[tuple[str, str, int]]:
    """``(uri, tag, size)`` per file: the S3 ETag as listed, else the sha256 of the file (streamed).

    Local paths are made absolute, so the same folder given two ways gives the same digests
    and every pod can open the file whatever its working directory.
    """
    from stages.common.audit import Artifact
    from stages.common.storage import sha256_file

    out: list[tuple[str, str, int]] = []
    width = len(str(len(files) - 1))
    last_log, hashed = time.monotonic(), 0
    for k, f in enumerate(files):
        sha: str | None
        if f.uri.startswith("s3://") and f.etag:
            uri, sha, tag = f.uri, f.sha256, f.etag
        elif f.uri.startswith("s3://"):  # a store that lists no ETags: hash the object itself
            uri, path = f.uri, ctx.storage.fetch(f.uri)
            sha = tag = f.sha256 or sha256_file(path)
            path.unlink(missing_ok=True)
        else:
            uri = os.path.abspath(f.key)
            sha = tag = f.sha256 or sha256_file(uri)
            hashed += f.bytes
        out.append((uri, tag, f.bytes))
        ctx.artifacts.append(Artifact("input", f"source-{k:0{width}d}", uri, sha, None, f.bytes))
        if time.monotonic() - last_log > _PROGRESS_SECONDS:
            log.info("hashed %d of %d files (%d bytes)", k + 1, len(files), hashed)
            last_log = time.monotonic()
    return out


def body(ctx: StageContext) -> None:
    from .sources import is_many, list_files

    args = ctx.args
    if not is_many(args.source):
        raise _not_many(args.source)
    files = list_files(args.source, ctx.storage)
    if len(files) < 2:
        raise InputError(
            f"{args.source}: only one file ({files[0].uri}); partitioning needs at least 2 — "
            "use the single-pod pipeline (python -m stages.ingest --source <file>)"
        )
    if len(files) > args.max_partitions:
        raise InputError(
            f"{args.source}: {len(files)} files, more than --max-partitions {args.max_partitions}; "
            "narrow the source to a dated prefix or glob (one run per day), or raise --max-partitions"
        )
    items = plan(_tags(ctx, files), args.holdout_fraction, args.salt)
    text = json.dumps(items, separators=(",", ":"), ensure_ascii=False)
    with ctx.output("partitions", args.out, ".json", primary=True) as out:
        out.path.write_text(text + "\n", encoding="utf-8")
        out.rows = len(items)
    holdout = [i for i in items if i["split"] == "holdout"]
    total, holdout_bytes = sum(i["size"] for i in items), sum(i["size"] for i in holdout)
    ctx.metrics.update(
        source=args.source,
        files=len(items),
        bytes=total,
        train_count=len(items) - len(holdout),
        holdout_count=len(holdout),
        holdout_bytes=holdout_bytes,
    )
    log.info(
        "%d partitions (%d bytes): %d train, %d holdout (%d bytes, %.1f%%)",
        len(items),
        total,
        len(items) - len(holdout),
        len(holdout),
        holdout_bytes,
        100.0 * holdout_bytes / total if total else 0.0,
    )
    ctx.set_param("partitions", text)
    ctx.set_param("holdout", json.dumps(holdout, separators=(",", ":"), ensure_ascii=False))
    ctx.set_param("count", len(items))
    ctx.set_param("train_count", len(items) - len(holdout))
    ctx.set_param("holdout_count", len(holdout))


def main() -> None:
    main_exit(run_stage("ingest-partitions", build_parser(), body))


if __name__ == "__main__":
    main()
