"""Sources that are many files: a local folder, a glob, or an S3 prefix or glob.

``--source landing/2026-11-28/`` (a folder: the regular files directly in it, names
starting with ``.`` left out), ``--source 'landing/2026-11-2*/conn.*.log.gz'`` (a glob;
``**`` spans folders), ``--source s3://bucket/landing/2026-11-28/`` (every object under
the prefix; a prefix ends with ``/``) or ``--source 's3://bucket/landing/2026-11-2*/conn.*.log.gz'``
(an S3 glob: ``*``, ``?`` and ``[...]`` match within one ``/``-separated part, ``**`` across
parts). The files are read one after another in sorted order into one RAW output: each is
fetched (downloaded for S3), streamed through its reader and, for S3, deleted again, so
memory and disk hold one file at a time. Every flow and every rejected row carries its
file's URI in ``source``; a file that cannot be read as a whole ends the run with exit 2
naming it. An empty folder, prefix or glob is exit 2 naming the source.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages.common.errors import InputError

if TYPE_CHECKING:
    from stages.common.runner import StageContext

    from .chunk import Chunk

__all__ = ["SourceFile", "is_many", "list_files", "read_files"]

log = logging.getLogger(__name__)

_WILD = "*?["


@dataclass
class SourceFile:
    """One file of a source, and what was read from it (for the manifest and the audit)."""

    uri: str
    key: str  # local path or S3 key
    bytes: int
    etag: str | None = None
    sha256: str | None = None
    rows_in: int = 0
    rows: int = 0
    rejected: int = 0

    def entry(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _local(source: str) -> str:
    return source.removeprefix("file://")


def is_many(source: str) -> bool:
    """Whether ``source`` names several files: a folder, a glob, an S3 prefix (ending ``/``) or glob."""
    if source.startswith("s3://"):
        key = source[5:].partition("/")[2]
        return not key or key.endswith("/") or any(c in key for c in _WILD)
    if "://" in source and not source.startswith("file://"):
        return False
    path = _local(source)
    if Path(path).is_file():
        return False  # a file whose name holds a '[' is still that one file
    return Path(path).is_dir() or any(c in path for c in _WILD)


def list_files(source: str, storage: Any) -> list[SourceFile]:
    """The files ``source`` names, sorted by key; InputError when there are none."""
    if source.startswith("s3://"):
        bucket, _, pattern = source[5:].partition("/")
        if not bucket:
            raise InputError(f"{source}: an S3 source needs a bucket (s3://bucket/prefix/)")
        wild = next((i for i, c in enumerate(pattern) if c in _WILD), None)
        prefix = pattern if wild is None else pattern[:wild]
        found = [
            SourceFile(f"s3://{bucket}/{key}", key, size, etag or None)
            for key, size, etag in storage.list_objects(bucket, prefix)
            if not key.endswith("/") and (wild is None or _match(key, pattern))
        ]
        what = "no objects under this prefix" if wild is None else "no objects match this glob"
    else:
        path = _local(source)
        if Path(path).is_dir():
            paths = [p for p in Path(path).iterdir() if p.is_file() and not p.name.startswith(".")]
            what = "the folder holds no files"
        else:
            paths = [Path(p) for p in glob.glob(path, recursive=True) if Path(p).is_file()]
            what = "no files match this glob"
        found = [SourceFile(str(p), str(p), p.stat().st_size) for p in paths]
    if not found:
        raise InputError(f"{source}: {what}; nothing to ingest — check the prefix, glob or date")
    found.sort(key=lambda f: f.key)
    log.info("%s: %d file(s), %d bytes", source, len(found), sum(f.bytes for f in found))
    return found


def _match(key: str, pattern: str) -> bool:
    """Glob match by ``/``-separated parts, as a shell would: ``*`` stays in its part, ``**`` spans parts."""
    return _match_parts(key.split("/"), pattern.split("/"))


def _match_parts(parts: list[str], pats: list[str]) -> bool:
    if not pats:
        return not parts
    if pats[0] == "**":
        return any(_match_parts(parts[i:], pats[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], pats[0]) and _match_parts(parts[1:], pats[1:])


def read_files(
    ctx: StageContext, files: list[SourceFile], fmt: str, preset: str | None, mapping: Path | None
) -> Iterator[Chunk]:
    """Chunks of every file in order, each file fetched only when its turn comes and recorded as an input."""
    from .readers import read_source

    width = len(str(len(files) - 1))
    for k, f in enumerate(files):
        path = ctx.storage.fetch(f.uri)
        try:
            for chunk in read_source(path, f.uri, fmt, preset, mapping):
                f.rows_in += chunk.rows_in
                f.rows += chunk.flows.num_rows
                f.rejected += chunk.rejects.num_rows
                yield chunk
        except InputError as exc:  # name the file as the user gave it, not where it was downloaded to
            text = str(exc)
            raise InputError(text.replace(str(path), f.uri) if str(path) in text else f"{f.uri}: {text}") from exc
        f.sha256 = ctx.record("input", f"source-{k:0{width}d}", f.uri, path, f.rows_in).sha256
        if f.uri.startswith("s3://"):
            path.unlink(missing_ok=True)
        log.info("%s: %d rows (%d rejected)", f.uri, f.rows_in, f.rejected)
