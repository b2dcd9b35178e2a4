"""Zeek conn logs in TSV with ``#separator/#fields/#types`` headers (plain or gz); JSON is in zeekjson.py.

The schema comes from the log's own header through one type table (``ZEEK_TYPES``);
fields may come in any order, extra fields are ignored, missing canonical ones stay
null, and ``-`` / ``(empty)`` stay null. Labelled Stratosphere/IoT-23 logs add
``label`` and ``detailed-label``; their known quirk — the last three header and row
fields separated by three spaces instead of tabs — is normalised on the fly.

Fast path: each block is parsed by multi-threaded ``pyarrow.csv`` with the header's
types. Only a block that fails (wrong field count, non-numeric value, bad UTF-8, a huge
line) is re-read line by line, so bad rows are quarantined with line and field while
clean files keep full speed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv

from stages.common.errors import InputError

from .chunk import Chunk, SourceLines
from .normalise import Problems, conform, labels, parse_timestamps, raw_text, reject_rows, split
from .textblocks import MAX_LINE_BYTES, TOO_LONG, blocks, numbered_lines

__all__ = ["ZEEK_TYPES", "CONN_FIELDS", "read_tsv", "arrow_type", "to_chunk"]

log = logging.getLogger(__name__)

ZEEK_TYPES: dict[str, pa.DataType] = {
    "time": pa.float64(),  # epoch seconds
    "interval": pa.float64(),  # seconds
    "double": pa.float64(),
    "count": pa.int64(),
    "int": pa.int64(),
    "port": pa.int64(),
    "bool": pa.bool_(),
    "addr": pa.string(),
    "subnet": pa.string(),
    "enum": pa.string(),
    "string": pa.string(),
    "pattern": pa.string(),
}  # anything else (set[...], vector[...], record types) is read as a string
CONN_FIELDS = {
    "ts": "ts",
    "uid": "uid",
    "id.orig_h": "src_ip",
    "id.orig_p": "src_port",
    "id.resp_h": "dst_ip",
    "id.resp_p": "dst_port",
    "proto": "proto",
    "service": "service",
    "duration": "duration",
    "orig_bytes": "src_bytes",
    "resp_bytes": "dst_bytes",
    "orig_pkts": "src_pkts",
    "resp_pkts": "dst_pkts",
    "orig_ip_bytes": "src_ip_bytes",
    "resp_ip_bytes": "dst_ip_bytes",
    "conn_state": "conn_state",
    "history": "history",
}
LABEL_FIELDS = ("label",)
DETAIL_FIELDS = ("detailed-label", "detailedlabel", "detailed_label")
REQUIRED = ("ts", "id.orig_h", "id.resp_h")
_CANON_TO_ZEEK = {v: k for k, v in CONN_FIELDS.items()}
_DEFAULT_TYPES = {"ts": "time", "duration": "interval", "id.orig_p": "port", "id.resp_p": "port"}
_QUIRK = b"   "  # IoT-23: three spaces instead of a tab before label / detailed-label


def arrow_type(zeek_type: str) -> pa.DataType:
    """Arrow type of a Zeek ``#types`` entry."""
    return ZEEK_TYPES.get(zeek_type.strip(), pa.string())


@dataclass(frozen=True)
class Layout:
    """What a header declares: field names, their Arrow types, separator, null markers."""

    fields: list[str]
    types: dict[str, pa.DataType]
    sep: bytes
    nulls: list[str]
    quirk: bool

    @property
    def wanted(self) -> list[str]:
        keep = set(CONN_FIELDS) | set(LABEL_FIELDS) | set(DETAIL_FIELDS)
        return [f for f in dict.fromkeys(self.fields) if f in keep]


def _unescape(value: str) -> bytes:
    """``\\x09`` escapes as their byte; any other character as its UTF-8 bytes."""
    parts = re.split(r"\\x([0-9a-fA-F]{2})", value)  # odd items are the escapes' hex digits
    return b"".join(bytes([int(p, 16)]) if i % 2 else p.encode("utf-8") for i, p in enumerate(parts))


@dataclass
class _Header:
    path: Path
    sep: bytes = b"\t"
    directives: dict[str, list[str]] = field(default_factory=dict)
    fields_line: int = 0
    quirk: bool = False

    def take(self, raw: bytes | bytearray, line: int) -> None:
        """Record one ``#`` line. ``#separator`` uses a space; the rest use the separator."""
        text = raw.rstrip(b"\r").decode("utf-8", errors="replace")
        if text.startswith("#separator"):
            sep = _unescape(text.split(" ", 1)[1].strip() if " " in text else "\\x09")
            # one ASCII byte: the fast parser takes nothing else, and a longer one matched no row at all
            if len(sep) != 1 or sep[0] > 0x7F or sep in (b"\n", b"\r", b"#"):
                raise InputError(
                    f"{self.path} line {line}: #separator {text[10:].strip()[:20]!r} is not one ASCII character "
                    "(Zeek writes '#separator \\x09'); fix the header"
                )
            self.sep = sep
            return
        if text.startswith("#fields"):
            self.quirk = "   " in text
            self.fields_line = line
            self.directives.pop("types", None)
        tab = self.sep.decode("latin-1")
        name, *values = re.split(f"{re.escape(tab)}|   ", text) if self.quirk else text.split(tab)
        self.directives[name.lstrip("#")] = [v.strip() for v in values]

    def layout(self, line: int) -> Layout:
        names = self.directives.get("fields")
        if not names:
            raise InputError(
                f"{self.path} line {line}: data before any #fields header line; a Zeek TSV log needs its "
                "#separator/#fields/#types header (check the log was not cut, or pass the right --format)"
            )
        twice = sorted({f for f in names if names.count(f) > 1})
        if twice:
            raise InputError(
                f"{self.path} line {self.fields_line}: #fields names {', '.join(twice[:10])} more than once; "
                "which column is meant is ambiguous — fix the header"
            )
        missing = [f for f in REQUIRED if f not in names]
        if missing:
            raise InputError(
                f"{self.path} line {self.fields_line}: #fields lacks required field(s) {', '.join(missing)} "
                f"(found {', '.join(names[:8])} ...); is this a Zeek conn.log?"
            )
        ztypes = self.directives.get("types") or []
        if len(ztypes) != len(names):
            log.warning("%s: #types missing or of another length than #fields; using conn.log defaults", self.path)
            ztypes = [_DEFAULT_TYPES.get(f, "count" if f.endswith(("bytes", "pkts")) else "string") for f in names]
        nulls = [self.directives.get("unset_field", ["-"])[0], self.directives.get("empty_field", ["(empty)"])[0]]
        types = dict(zip(names, (arrow_type(t) for t in ztypes), strict=True))
        return Layout(names, types, self.sep, nulls, self.quirk)


class _TsvReader:
    def __init__(self, path: Path, source: str) -> None:
        self.path, self.source = path, source
        self.header = _Header(path)
        self.layout: Layout | None = None
        self.checked = False

    def chunks(self) -> Iterator[Chunk]:
        line = 1
        for block in blocks(self.path):
            if block.startswith(b"#") or b"\n#" in block:
                yield from self._mixed(block, line)
            else:
                yield from self._data(block, line)
            line += block.count(b"\n")
        if not self.header.directives.get("fields"):
            raise InputError(f"{self.path}: no #fields header line; not a Zeek TSV log (or pass the right --format)")
        if not self.checked:
            log.warning("%s: header only, no data rows; writing an empty output", self.source)

    def _mixed(self, block: bytes | bytearray, line: int) -> Iterator[Chunk]:
        """A block with header lines (start of file, #close, concatenated logs).

        Only the ``#`` lines are located and split off; data between them is sliced,
        never split into lines, so a 32 MB block with a header costs no more than one without.
        """
        pos, start = 0, 0  # byte offset of the current line / of the pending data run
        while pos < len(block):
            if block.startswith(b"#", pos):
                at = pos
            elif (newline := block.find(b"\n#", pos)) >= 0:
                at = newline + 1
            else:
                break  # no more header lines in this block
            if at > start:
                yield from self._data(block[start:at], line + block.count(b"\n", 0, start))
            end = block.index(b"\n", at) + 1
            raw = block[at : end - 1]
            self.header.take(raw, line + block.count(b"\n", 0, at))
            if raw.startswith((b"#fields", b"#types", b"#separator", b"#unset_field", b"#empty_field")):
                self.layout = None
            pos = start = end
        if start < len(block):
            yield from self._data(block[start:], line + block.count(b"\n", 0, start))

    def _data(self, seg: bytes | bytearray, line: int) -> Iterator[Chunk]:
        if self.layout is None:
            self.layout = self.header.layout(line)
        layout = self.layout
        if layout.quirk:
            seg = seg.replace(_QUIRK, layout.sep)
        if not self.checked:
            self._check_delimiter(seg, line, layout)
            self.checked = True
        table = _fast(seg, layout)
        if table is not None:
            yield to_chunk(table, self.source, SourceLines(lambda: numbered_lines(seg, line)), table.num_rows, [])
        else:
            yield _careful(seg, line, layout, self.source)

    def _check_delimiter(self, seg: bytes | bytearray, line: int, layout: Layout) -> None:
        head = seg[: 1 << 16].split(b"\n")[:-1] or [seg]
        sample = [(line + k, raw) for k, raw in enumerate(head) if raw.strip() and len(raw) <= MAX_LINE_BYTES][:20]
        n = len(layout.fields)
        if not sample or any(len(raw.rstrip(b"\r").split(layout.sep)) == n for _, raw in sample):
            return
        no, raw = sample[0]
        guess = max((b",", b";", b"|", b" ", b"\t"), key=raw.count)
        raise InputError(
            f"{self.path} line {no}: {len(raw.split(layout.sep))} field(s) separated by {layout.sep!r} but #fields "
            f"declares {n}, in every one of the first {len(sample)} lines; the data looks {guess.decode()!r}-separated "
            "— fix the #separator header or re-export the log"
        )


def read_tsv(path: Path, source: str) -> Iterator[Chunk]:
    """Chunks of a Zeek TSV log (plain or gzip)."""
    return _TsvReader(path, source).chunks()


def _fast(
    seg: bytes | bytearray, layout: Layout, as_strings: bool = False, block_size: int = 1 << 20
) -> pa.Table | None:
    """Parse a segment with pyarrow; None when any row is malformed (the caller goes careful)."""
    invalid: list[int] = []

    def on_invalid(row: Any) -> str:
        invalid.append(1)
        return "skip"

    wanted = layout.wanted
    types = {f: (pa.string() if as_strings else layout.types[f]) for f in wanted}
    if len(layout.sep) != 1:
        return None
    try:
        table = pcsv.read_csv(
            pa.BufferReader(seg),
            read_options=pcsv.ReadOptions(column_names=layout.fields, use_threads=True, block_size=block_size),
            parse_options=pcsv.ParseOptions(
                delimiter=layout.sep.decode("latin-1"),
                quote_char=False,
                escape_char=False,
                ignore_empty_lines=True,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                include_columns=wanted,
                null_values=layout.nulls,
                strings_can_be_null=True,
                true_values=["T"],
                false_values=["F"],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, UnicodeDecodeError):
        return None
    return None if invalid else table


def _careful(seg: bytes | bytearray, line: int, layout: Layout, source: str) -> Chunk:
    """Line-by-line pass over a segment that failed the fast path."""
    rejects: list[tuple[int | None, str | None, str, str]] = []
    good: list[tuple[int, bytes]] = []
    n = len(layout.fields)
    checks = [(i, name) for i, name in enumerate(layout.fields) if name in layout.wanted]
    all_lines = numbered_lines(seg, line)
    for no, raw in all_lines:
        text = raw_text(raw)
        if len(raw) > MAX_LINE_BYTES:
            rejects.append((no, None, TOO_LONG, text))
            continue
        parts = raw.split(layout.sep)
        if len(parts) != n:
            rejects.append((no, None, f"wrong field count: {len(parts)} fields, expected {n}", text))
            continue
        bad = next((name for i, name in checks if not _utf8(parts[i])), None)
        if bad is not None:
            rejects.append((no, _CANON_TO_ZEEK.get(bad, bad), "non-UTF-8 bytes", text))
            continue
        good.append((no, raw))
    body = b"".join(raw + b"\n" for _, raw in good)
    longest = max((len(raw) for _, raw in good), default=0)
    table = _fast(body, layout, as_strings=True, block_size=max(1 << 20, 2 * longest + 2)) if good else None
    if good and table is None:  # should not happen after the checks; never lose the rows
        rejects.extend((no, None, "unparseable line", raw_text(raw)) for no, raw in good)
        good = []
    prior = reject_rows(source, rejects)
    if not good:
        return Chunk(conform({}, 0, source, Problems(0)), prior, len(all_lines))
    assert table is not None
    return to_chunk(table, source, SourceLines(good), len(all_lines), [prior])


def _utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def to_chunk(table: pa.Table, source: str, raw: Any, rows_in: int, prior: list[pa.Table]) -> Chunk:
    """Zeek-named columns → canonical flows + rejects (field names in rejects stay Zeek's)."""
    n = table.num_rows
    names = table.column_names
    cols = {CONN_FIELDS[f]: table.column(f) for f in names if f in CONN_FIELDS}
    problems = Problems(n)
    if "ts" in cols:
        cols["ts"], bad = parse_timestamps(cols["ts"])
        problems.add(bad, "ts", "unparseable timestamp")
    label_col = next((f for f in LABEL_FIELDS if f in names), None)
    detail_col = next((f for f in DETAIL_FIELDS if f in names), None)
    unknown: dict[str, int] = {}
    if label_col:
        lab, atk, unknown = labels(
            table.column(label_col), table.column(detail_col) if detail_col else None, n, names_are_attacks=False
        )
        cols["label"], cols["attack_type"] = lab, atk
    flows = conform(cols, n, source, problems, required=("ts", "src_ip", "dst_ip"))
    good, rejects = split(flows, problems, source, raw, _CANON_TO_ZEEK)
    parts = [t for t in (*prior, rejects) if t.num_rows]
    all_rejects = pa.concat_tables(parts).sort_by("line") if len(parts) > 1 else parts[0] if parts else rejects
    return Chunk(good, all_rejects, rows_in, unknown)
