"""Reading text sources: gzip by magic bytes, blocks of whole lines, numbered lines.

Every text reader (Zeek TSV, Zeek JSON, CSV) reads its file through ``blocks`` — bounded
memory whatever the input, a truncated or corrupt gzip stream refused as an ``InputError``
naming the file — and numbers the lines of a block with ``numbered_lines`` when it has
to say where a bad row came from. This module imports no reader.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

from stages.common.errors import InputError

__all__ = ["BLOCK_BYTES", "MAX_LINE_BYTES", "TOO_LONG", "blocks", "head", "numbered_lines", "open_binary"]

BLOCK_BYTES = 32 << 20  # text read per block; a block ends on a line boundary
MAX_LINE_BYTES = 1 << 20  # longer lines are quarantined ("line too long"), and only this much of them is read
TOO_LONG = f"line too long: over {MAX_LINE_BYTES} bytes"
GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"


def open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, transparently gunzipped when it starts with the gzip magic."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")  # noqa: SIM115


def blocks(path: Path, size: int = BLOCK_BYTES) -> Iterator[bytearray]:
    """Yield the (decompressed) file in blocks of ~``size`` bytes that end with a newline.

    The next block is read (and gunzipped) in a background thread while the caller parses
    the current one. Each block is completed to the end of its last line with ``readline``,
    so nothing is copied twice; a UTF-8 BOM is dropped. Memory stays bounded whatever the
    input: a line that goes on past MAX_LINE_BYTES (a gzip bomb of zeros has no newline at
    all) is kept only up to the limit, so it is rejected as too long, and the rest of it is
    read and dropped in 1 MiB pieces. Raises InputError when a gzip
    stream is truncated or corrupt (nothing after the damage can be trusted, so the whole
    file is refused rather than half-ingested).
    """
    from concurrent.futures import ThreadPoolExecutor

    with open_binary(path) as fh, ThreadPoolExecutor(1, thread_name_prefix="read") as pool:
        ahead = pool.submit(_read_block, fh, size, path)
        first = True
        while True:
            block = ahead.result()
            if not block:
                return
            ahead = pool.submit(_read_block, fh, size, path)
            if first and block.startswith(BOM):
                del block[: len(BOM)]
            first = False
            yield block


def _read_block(fh: IO[bytes], size: int, path: Path) -> bytearray:
    try:
        block = bytearray(fh.read(size))
        if block and not block.endswith(b"\n"):
            rest = fh.readline(MAX_LINE_BYTES + 1)
            block += rest
            if len(rest) > MAX_LINE_BYTES:  # over the limit and still going: drop the remainder
                while (piece := fh.readline(1 << 20)) and not piece.endswith(b"\n"):
                    pass
    except (EOFError, OSError, zlib.error) as exc:
        raise _corrupt(path, exc) from exc
    if block and not block.endswith(b"\n"):
        block += b"\n"
    return block


def head(path: Path, n: int = 4096) -> bytes:
    """The first ``n`` decompressed bytes, without a UTF-8 BOM."""
    try:
        with open_binary(path) as fh:
            return fh.read(n).removeprefix(BOM)
    except (EOFError, OSError, zlib.error) as exc:
        raise _corrupt(path, exc) from exc


def _corrupt(path: Path, exc: BaseException) -> InputError:
    return InputError(f"{path}: truncated or corrupt gzip stream ({exc}); re-copy or re-export the file")


Skip = Literal["empty", "blank", "none"]


def numbered_lines(block: bytes | bytearray, line: int, skip: Skip = "empty") -> list[tuple[int, bytes]]:
    """(line number, bytes) of the lines of a block that ends with a newline; ``line`` is the first's.

    ``skip`` says which lines are not records, the way the fast parser counts rows:
    ``"empty"`` — a trailing CR is dropped and lines left empty are skipped (pyarrow's CSV
    reader with ``ignore_empty_lines``); ``"blank"`` — lines are kept as written and those of
    only whitespace are skipped (pyarrow's JSON reader); ``"none"`` — every line is kept as
    written (a quoted CSV value may span an empty line).
    """
    lines = bytes(block).split(b"\n")[:-1]
    if skip == "empty":
        return [(line + k, raw.rstrip(b"\r")) for k, raw in enumerate(lines) if raw.rstrip(b"\r")]
    if skip == "blank":
        return [(line + k, raw) for k, raw in enumerate(lines) if raw.strip()]
    return [(line + k, raw) for k, raw in enumerate(lines)]
