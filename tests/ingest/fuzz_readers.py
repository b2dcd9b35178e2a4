"""Coverage-guided fuzzing of the ingest readers (atheris), also a plain replay function.

One input is one source file: its first byte picks the declared format (and gzip, with
the high bit; with bit 0x20 the file starts with a --mapping JSON, up to a NUL byte), the
rest is the file. The property: reading it either succeeds (rows in =
rows out + rejected, checked by the writer) or raises InputError (exit 2) — any other
exception would be exit 1 on hostile data, which is a bug. Every crash found is kept in
``fuzz_crashes/`` and replayed by tests/ingest/test_fuzz.py.

    python tests/ingest/fuzz_readers.py -max_total_time=60 -artifact_prefix=/tmp/ CORPUS_DIR
"""

from __future__ import annotations

import gzip
import logging
import sys
import tempfile
from pathlib import Path

FORMATS = ("auto", "zeek", "zeek-json", "csv", "parquet")


def encode(fmt: str, body: bytes, gz: bool = False, mapping: bytes | None = None) -> bytes:
    """The fuzz input that reads ``body`` as ``fmt`` (with a ``--mapping`` file when given)."""
    flags = (0x80 if gz else 0) | (0x20 if mapping is not None else 0)
    return bytes([FORMATS.index(fmt) | flags]) + (mapping + b"\0" if mapping is not None else b"") + body


def run_one(data: bytes, workdir: Path) -> None:
    """Ingest ``data`` (see ``encode``); only InputError may escape."""
    from stages.common.errors import InputError
    from stages.ingest.readers import read_source
    from stages.ingest.writer import write_chunks

    if not data:
        return
    fmt = FORMATS[(data[0] & 0x1F) % len(FORMATS)]
    body, mapping = data[1:], None
    if data[0] & 0x20:
        text, _, body = body.partition(b"\0")
        mapping = workdir / "mapping.json"
        mapping.write_bytes(text)
    source = workdir / "input"
    source.write_bytes(gzip.compress(body, 1) if data[0] & 0x80 else body)
    try:
        chunks = read_source(source, "fuzz", fmt, None, mapping)
        write_chunks(chunks, workdir / "flows.parquet", workdir / "rejects.parquet")
    except InputError:
        pass


def main() -> None:
    import atheris

    logging.disable(logging.CRITICAL)
    with atheris.instrument_imports():
        import stages.ingest.chunk  # noqa: F401
        import stages.ingest.csvflows  # noqa: F401
        import stages.ingest.normalise  # noqa: F401
        import stages.ingest.readers  # noqa: F401
        import stages.ingest.textblocks  # noqa: F401
        import stages.ingest.zeek  # noqa: F401
        import stages.ingest.zeekjson  # noqa: F401
    workdir = Path(tempfile.mkdtemp(prefix="fuzz-ingest-"))
    atheris.Setup(sys.argv, lambda data: run_one(data, workdir))
    atheris.Fuzz()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main()
