"""``python -m stages.ingest``: one source → RAW flows.parquet (canonical schema) + rejects.parquet.

Output parameters: ``rows`` (flows written), ``rejected`` (quarantined rows), ``sha256``
(of flows.parquet). Exit 2 when the source as a whole is unusable (missing, empty,
no header, wrong delimiter, corrupt gzip, wrong Parquet schema); bad rows alone never
fail the stage — they are counted and kept in the rejects file.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from stages.common.runner import StageContext, main_exit, run_stage

if TYPE_CHECKING:
    from .readers import Chunk

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
        help="path, file://, s3://bucket/key, or synthetic://?rows=N&seed=S&attack_share=F&days=D",
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
    p.add_argument("--output", required=True, help="where flows.parquet goes (path or URI)")
    p.add_argument("--rejects", required=True, help="where rejects.parquet goes (path or URI)")
    return p


def _synthetic(uri: str) -> Iterator[Chunk]:
    import pyarrow as pa

    from . import synthetic
    from .normalise import REJECT_SCHEMA
    from .readers import Chunk

    for batch in synthetic.generate_batches(**synthetic.parse_uri(uri)):
        yield Chunk(pa.Table.from_batches([batch]), REJECT_SCHEMA.empty_table(), batch.num_rows)


def body(ctx: StageContext) -> None:
    from pathlib import Path

    from .readers import read_source
    from .writer import write_chunks

    args = ctx.args
    synthetic = args.source.startswith("synthetic://")
    if synthetic:
        chunks = _synthetic(args.source)
    else:
        mapping = ctx.fetch_input("mapping", args.mapping) if args.mapping else None
        path = ctx.fetch_input("source", args.source)
        chunks = read_source(Path(path), args.source, args.format, args.preset or None, mapping)
    with (
        ctx.output("flows", args.output, ".parquet", primary=True) as flows,
        ctx.output("rejects", args.rejects, ".parquet") as rejects,
    ):
        stats = write_chunks(chunks, flows.path, rejects.path, count_duplicates=not synthetic)
        flows.rows, rejects.rows = stats.rows_out, stats.rejected
        if stats.rows_in == 0:
            log.warning("%s has no data rows; the outputs are empty", args.source)
    ctx.metrics.update(stats.metrics())
    ctx.metrics["source"] = args.source
    log.info(
        "ingested %d rows (%d rejected, %d duplicates) in %.1f s",
        stats.rows_out,
        stats.rejected,
        stats.duplicates,
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
