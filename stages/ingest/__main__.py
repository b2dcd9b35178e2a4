"""``python -m stages.ingest``: one source → RAW flows.parquet (canonical schema) + rejects.parquet.

Output parameters: ``rows`` (flows written), ``rejected`` (quarantined rows), ``sha256``
(of flows.parquet). Exit 2 when the source as a whole is unusable (missing, empty,
no header, wrong delimiter, corrupt gzip, wrong Parquet schema), and when more rows are
rejected than ``--max-reject-fraction`` allows (or all of them): a few bad rows are counted
and kept in the rejects file, but a format misread as a whole is never a success.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from stages.common.errors import InputError
from stages.common.runner import StageContext, main_exit, run_stage

if TYPE_CHECKING:
    from .chunk import Chunk
    from .sources import SourceFile
    from .writer import Stats

log = logging.getLogger("stages.ingest")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m stages.ingest",
        description="Read network flows (Zeek conn TSV/JSON, CSV flow exports, Parquet or synthetic://) "
        "into the canonical RAW Parquet; bad rows go to a rejects file with line, field and reason.",
    )
    p.add_argument(
        "--source",
        required=True,
        help="one file (path, file://, s3://bucket/key), many files (a folder 'landing/2026-11-28/', a glob "
        "'landing/2026-11-2*/conn.*.log.gz', an S3 prefix 's3://bucket/landing/2026-11-28/' or S3 glob "
        "'s3://bucket/landing/2026-11-2*/conn.*.log.gz': read one by one in sorted order into one RAW output, "
        "each row's source naming its file; an empty folder, prefix or glob exits 2), "
        "or synthetic://?rows=N&seed=S&attack_share=F&days=D",
    )
    p.add_argument(
        "--format",
        default="auto",
        choices=["auto", "zeek", "zeek-json", "csv", "parquet"],
        help="input format (auto: from the content — gzip/Parquet magic, '#' header, '{' JSON, else CSV)",
    )
    p.add_argument(
        "--preset",
        choices=["", "cicids2017", "unsw-nb15"],
        default="",
        help="CSV column preset ('' or omitted: recognised from the header)",
    )
    p.add_argument(
        "--mapping",
        default=None,
        help="JSON column mapping for other CSV exports (path or URI): "
        '{"columns": {canonical: csv_column}, "label": {"column": c, "benign": [...], "attack_column": c}, '
        '"timestamp": {"column": c, "format": strptime|"iso"|"epoch", "unit": "s|ms|us|ns"}, "duration_unit": "s"}',
    )
    p.add_argument(
        "--max-reject-fraction",
        type=_fraction,
        default=0.05,
        metavar="F",
        help="exit 2 (with the top reasons and example lines, nothing published) when more than this share "
        "of the input rows is rejected; default 0.05. Ordinary dirt in flow exports — a truncated last line, "
        "a stray header, a few unparseable values — stays far below 1%%; a misread format (wrong timestamp "
        "shape, relative times, wrong preset) rejects nearly 100%%, and a training set silently missing "
        "more than one row in twenty is no longer the traffic it claims to be. An input with rows that "
        "yields none always fails, whatever this says; 1 allows any other share",
    )
    p.add_argument(
        "--time-origin",
        type=_origin,
        default=None,
        metavar="WHEN",
        help="added to every timestamp, for logs whose ts counts seconds from the capture's start "
        "(Zeek run on a pcap with relative times): ISO 8601 (no offset = UTC) or epoch seconds; empty: none",
    )
    p.add_argument("--output", required=True, help="where flows.parquet goes (path or URI)")
    p.add_argument("--rejects", required=True, help="where rejects.parquet goes (path or URI)")
    p.add_argument(
        "--manifest",
        default=None,
        help="where to write manifest.json (path or URI; optional): the source and every file read, in order, "
        "with its key, bytes, S3 ETag, sha256, rows read, rows kept and rows rejected",
    )
    return p


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction between 0 and 1")
    return value


def _origin(text: str) -> float | None:
    """``--time-origin`` → epoch seconds (ISO 8601 without offset is UTC); empty: none (the workflow's default)."""
    import datetime as dt

    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is neither ISO 8601 nor epoch seconds") from exc
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def check_reject_budget(stats: Stats, source: str, max_fraction: float) -> None:
    """InputError when too many rows were rejected — and always when rows came in and none went out."""
    empty = stats.rejects_by_reason.get("empty record", 0)  # ",,,,": no data, not a misread one
    rejected, rows = stats.rejected - empty, stats.rows_in - empty
    share = rejected / rows if rows else 0.0
    if stats.rejected and (share > max_fraction or stats.rows_out == 0):
        aside = f"{empty} empty records aside; " if empty else ""
        if not rows:
            raise InputError(f"{source}: all {empty} records are empty (only separators); nothing to ingest")
        raise InputError(
            f"{source}: {rejected} of {rows} rows rejected ({share:.1%}; {aside}"
            f"--max-reject-fraction {max_fraction:g}), so this input was not read as what it is — "
            f"nothing published. Top reasons and examples:{stats.reject_summary()}"
        )


def _synthetic(uri: str) -> Iterator[Chunk]:
    import pyarrow as pa

    from . import synthetic
    from .chunk import Chunk
    from .normalise import REJECT_SCHEMA

    for batch in synthetic.generate_batches(**synthetic.parse_uri(uri)):
        yield Chunk(pa.Table.from_batches([batch]), REJECT_SCHEMA.empty_table(), batch.num_rows)


def _open_source(ctx: StageContext) -> tuple[Iterator[Chunk], list[SourceFile]]:
    """The chunks to write, and the files they come from (filled in as they are read)."""
    from pathlib import Path

    from .readers import read_source
    from .sources import SourceFile, is_many, list_files, read_files

    args = ctx.args
    if args.source.startswith("synthetic://"):
        return _synthetic(args.source), []
    mapping = ctx.fetch_input("mapping", args.mapping) if args.mapping else None
    if is_many(args.source):
        files = list_files(args.source, ctx.storage)
        return read_files(ctx, files, args.format, args.preset or None, mapping), files
    path = ctx.fetch_input("source", args.source)
    one = SourceFile(args.source, args.source, path.stat().st_size, sha256=ctx.artifacts[-1].sha256)
    return _counted(read_source(Path(path), args.source, args.format, args.preset or None, mapping), one), [one]


def _counted(chunks: Iterator[Chunk], f: SourceFile) -> Iterator[Chunk]:
    for chunk in chunks:
        f.rows_in += chunk.rows_in
        f.rows += chunk.flows.num_rows
        f.rejected += chunk.rejects.num_rows
        yield chunk


def body(ctx: StageContext) -> None:
    from stages.common.jsondoc import to_json

    from .normalise import time_origin
    from .writer import write_chunks

    args = ctx.args
    chunks, files = _open_source(ctx)
    with (
        ctx.output("flows", args.output, ".parquet", primary=True) as flows,
        ctx.output("rejects", args.rejects, ".parquet") as rejects,
    ):
        with time_origin(args.time_origin):
            stats = write_chunks(chunks, flows.path, rejects.path, count_duplicates=bool(files))
        flows.rows, rejects.rows = stats.rows_out, stats.rejected
        if stats.rows_in == 0:
            log.warning("%s has no data rows; the outputs are empty", args.source)
    ctx.metrics.update(stats.metrics())
    ctx.metrics["source"] = args.source
    ctx.metrics["files"] = len(files)
    check_reject_budget(stats, args.source, args.max_reject_fraction)
    if args.manifest:
        doc = {"source": args.source, "rows": stats.rows_out, "rejected": stats.rejected}
        with ctx.output("manifest", args.manifest, ".json") as out:
            out.path.write_text(to_json({**doc, "files": [f.entry() for f in files]}))
    log.info(
        "ingested %d rows (%d rejected, %d duplicates%s) in %.1f s",
        stats.rows_out,
        stats.rejected,
        stats.duplicates,
        f": rows equal in their {' + '.join(sorted(stats.duplicates_compared))}" if stats.duplicates_compared else "",
        stats.seconds,
        extra={"rows_in": stats.rows_in, "rejects_by_reason": dict(stats.rejects_by_reason)},
    )
    ctx.set_param("rows", stats.rows_out)
    ctx.set_param("rejected", stats.rejected)
    ctx.set_param("sha256", ctx.sha256("flows"))


def main() -> None:
    main_exit(run_stage("ingest", build_parser(), body))


if __name__ == "__main__":
    main()
