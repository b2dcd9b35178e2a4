"""CSV flow exports (CICFlowMeter / CIC-IDS2017, UNSW-NB15, user mappings) → canonical flows.

The dialect (delimiter, header names, preset or mapping from ``csvspecs``) is fixed from
the first line. Header names are compared trimmed and case-insensitively (CIC-IDS2017
writes `` Destination Port``); a UTF-8 BOM is dropped; text that is not UTF-8 is read as
Windows-1252 (CIC-IDS2017 writes ``Web Attack – Brute Force`` with a cp1252 dash).
UNSW-NB15's full CSVs have no header; they are recognised by their 49 columns. Blocks
parse on pyarrow's fast path; a block with a malformed row is re-read line by line.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from stages.common.errors import InputError

from . import normalise as nz
from .chunk import Chunk, Misaligned, SourceLines
from .csvspecs import PRESETS, UNSW_FULL_COLUMNS, Spec, load_mapping, normal_name
from .protocols import PROTO_NUMBERS
from .textblocks import MAX_LINE_BYTES, TOO_LONG, blocks, numbered_lines

__all__ = ["read_csv"]

log = logging.getLogger(__name__)

_TEXT = {"ts", "uid", "src_ip", "dst_ip", "proto", "service", "conn_state", "history"}
_IPV4 = re.compile(rb"^\d{1,3}(\.\d{1,3}){3}$")
# CIC-IDS2017 comes in two releases with the same columns under other names and other timestamps:
CIC_ORIGINAL = "CIC-IDS2017 original release (UNB 2017, 'Source IP' header)"
CIC_CORRECTED = "CIC-IDS2017 corrected release (Engelen et al. 2021, 'id'/'Src IP'/'Attempted Category' header)"
EMPTY_RECORD = "empty record: every field empty (not counted against --max-reject-fraction)"
CIC_CAPTURE = (1499040000.0, 1499472000.0)  # 2017-07-03 and 2017-07-08 00:00 UTC: the five capture days
_ISO_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$")
_DMY_SHAPE = re.compile(r"^\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}(:\d{2})?$")


@dataclass
class _Dialect:
    names: list[str]  # normal_name'd, made unique
    sep: str
    data_line: int  # 1-based line of the first data row
    spec: Spec
    use: dict[str, str]  # canonical → CSV column
    label: str | None
    attack: str | None
    ts_format: str | None = None
    variant: str = ""  # what the header says the file is (CIC-IDS2017: original or corrected release)
    pm_logged: bool = False


def _header(path: Path, first: bytes | bytearray, preset: str | None, mapping: Path | None) -> _Dialect:
    line = first.split(b"\n", 1)[0].rstrip(b"\r")
    text = _decode(line)
    sep = max((",", "\t", ";", "|"), key=text.count)
    if text.count(sep) == 0:
        raise InputError(
            f"{path} line 1: the header is one column ({text[:80]!r}); expected comma-separated flow columns "
            "— wrong delimiter, or not a CSV flow export?"
        )
    try:
        raw_names = next(csv.reader([text], delimiter=sep))
    except csv.Error as exc:  # e.g. a bare carriage return inside the header line
        raise InputError(f"{path} line 1: the header is not a CSV line ({exc})") from exc
    headerless = len(raw_names) == len(UNSW_FULL_COLUMNS) and bool(_IPV4.match(raw_names[0].strip().encode()))
    names = [normal_name(n) for n in (UNSW_FULL_COLUMNS if headerless else raw_names)]
    seen: dict[str, int] = {}
    for i, n in enumerate(names):  # CIC-IDS2017 repeats "Fwd Header Length"
        seen[n] = seen.get(n, -1) + 1
        names[i] = n if not seen[n] else f"{n}.{seen[n]}"
    spec = _choose_spec(path, set(names), preset, mapping)
    use = {
        canon: next(a for a in aliases if a in names) for canon, aliases in spec.columns.items() if _any(aliases, names)
    }
    missing = [c for c in spec.required if c not in use]
    if missing:
        want = [spec.columns[c][0] for c in missing]
        raise InputError(f"{path} line 1: missing required column(s) {want} for {spec.name} (found {names[:10]} ...)")
    label = next((a for a in spec.label if a in names), None)
    attack = next((a for a in spec.attack if a in names), None)
    variant = _cic_variant(set(names)) if spec.ts_format == "dmy-auto" else ""
    log.info(
        "%s: CSV as %s%s, %d of %d columns used",
        path,
        spec.name,
        f" ({variant} by its header)" if variant else "",
        len(use) + bool(label),
        len(names),
    )
    return _Dialect(names, sep, 1 if headerless else 2, spec, use, label, attack, variant=variant)


def _cic_variant(names: set[str]) -> str:
    """Which CICFlowMeter export the header looks like; the timestamps' shape decides the parsing."""
    if "attempted category" in names or {"id", "src ip", "total fwd packet"} <= names:
        return CIC_CORRECTED
    if "source ip" in names:
        return CIC_ORIGINAL
    if "dst port" in names and "tot fwd pkts" in names:
        return "CSE-CIC-IDS2018 naming"
    return "CICFlowMeter export"


def _any(aliases: tuple[str, ...], names: list[str]) -> bool:
    return any(a in names for a in aliases)


def _choose_spec(path: Path, names: set[str], preset: str | None, mapping: Path | None) -> Spec:
    if mapping is not None:
        return load_mapping(mapping)
    if preset:
        if preset not in PRESETS:
            raise InputError(f"unknown --preset {preset!r}; use one of {', '.join(PRESETS)} or --mapping FILE")
        return PRESETS[preset]
    for spec in PRESETS.values():
        if all(d in names for d in spec.detect):
            return spec
    raise InputError(
        f"{path}: CSV columns {sorted(names)[:12]} match no preset ({', '.join(PRESETS)}); "
        "pass --preset or a --mapping FILE"
    )


def _decode(raw: bytes | bytearray) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def read_csv(path: Path, source: str, preset: str | None, mapping: Path | None) -> Iterator[Chunk]:
    """Chunks of a CSV flow export (plain or gzip)."""
    dialect: _Dialect | None = None
    line, warned, rows = 1, False, 0
    for block in blocks(path):
        start = line
        line += block.count(b"\n")
        if dialect is None:
            dialect = _header(path, block, preset, mapping)
            if dialect.data_line == 2:
                block, start = block.split(b"\n", 1)[1], start + 1
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            if not warned:
                log.warning("%s: text is not UTF-8; reading it as Windows-1252", source)
                warned = True
            block = bytearray(block.decode("cp1252", errors="replace").encode("utf-8"))
        if block.strip():
            chunk = _block(block, start, dialect, source)
            rows += chunk.rows_in
            yield chunk
    if not rows:
        log.warning("%s: header only, no data rows; writing an empty output", source)


def _records(seg: bytes | bytearray, line: int) -> list[tuple[int, bytes]]:
    """(first line number, bytes) of each CSV record: lines are joined while a quoted field is open.

    A quoted value may hold a newline; counting such a record as two lines made the careful
    pass disagree with pyarrow about how many rows a block has. Blank lines are not records.
    """
    out: list[tuple[int, bytes]] = []
    parts: list[bytes] = []
    first = quotes = 0
    for no, raw in numbered_lines(seg, line, "none"):
        raw = raw.rstrip(b"\r")
        if not parts:
            if not raw:
                continue
            first = no
        parts.append(raw)
        quotes += raw.count(b'"')
        if quotes % 2 == 0:  # "" inside a quoted value keeps the parity
            out.append((first, b"\n".join(parts)))
            parts, quotes = [], 0
    if parts:  # a quote never closed: one record to the end of the block, rejected below
        out.append((first, b"\n".join(parts)))
    return out


def _parse(seg: bytes | bytearray, d: _Dialect, as_strings: bool) -> pa.Table | None:
    invalid: list[int] = []

    def on_invalid(row: Any) -> str:
        invalid.append(1)
        return "skip"

    wanted = list(dict.fromkeys([*d.use.values(), *(c for c in (d.label, d.attack) if c)]))
    text = {c for k, c in d.use.items() if k in _TEXT} | {c for c in (d.label, d.attack) if c}
    types = {c: pa.string() for c in wanted if as_strings or c in text}
    try:
        table = pcsv.read_csv(
            pa.BufferReader(seg),
            read_options=pcsv.ReadOptions(column_names=d.names, block_size=max(1 << 20, len(seg) // 8 + 1)),
            parse_options=pcsv.ParseOptions(
                delimiter=d.sep, invalid_row_handler=on_invalid, newlines_in_values=as_strings
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                include_columns=wanted,
                null_values=["", "-", "NaN", "nan"],
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    return None if invalid else table


def _block(seg: bytes | bytearray, line: int, d: _Dialect, source: str) -> Chunk:
    table = _parse(seg, d, as_strings=False)
    if table is not None:
        # a quote pyarrow took literally shows as another record count: only the careful pass can tell
        raw = SourceLines(lambda: _records(seg, line), rows=table.num_rows)
        try:
            return _to_chunk(table, d, source, raw, table.num_rows, None, _record_array(seg, line, table.num_rows))
        except Misaligned:
            pass
    rejects: list[tuple[int | None, str | None, str, str]] = []
    good: list[tuple[int, bytes]] = []
    all_lines = _records(seg, line)
    for no, rawb in all_lines:
        text = nz.raw_text(rawb)
        if len(rawb) > MAX_LINE_BYTES:
            rejects.append((no, None, TOO_LONG, text))
            continue
        if rawb.count(b'"') % 2:
            rejects.append((no, None, "unterminated quoted field", text))
            continue
        try:
            count = len(next(csv.reader(io.StringIO(rawb.decode()), delimiter=d.sep), []))
        except csv.Error as exc:  # e.g. a field over the csv module's 128 KiB limit
            rejects.append((no, None, f"malformed CSV row: {exc}", text))
            continue
        if count != len(d.names):
            rejects.append((no, None, f"wrong field count: {count} fields, expected {len(d.names)}", text))
            continue
        good.append((no, rawb))
    prior = nz.reject_rows(source, rejects)
    table = _parse(b"".join(r + b"\n" for _, r in good), d, as_strings=True) if good else None
    if table is None or table.num_rows != len(good):
        rejects += [(no, None, "unparseable line", nz.raw_text(r)) for no, r in good]
        return Chunk(nz.conform({}, 0, source, nz.Problems(0)), nz.reject_rows(source, rejects), len(all_lines))
    records = pa.array([r for _, r in good], pa.binary())
    return _to_chunk(table, d, source, SourceLines(good), len(all_lines), prior, records)


def _record_array(seg: bytes | bytearray, line: int, n: int) -> pa.Array | None:
    """Each CSV record's bytes in pyarrow's row order, the key for counting duplicate source rows.

    Without quotes or blank lines a record is a line: the offsets come from the newlines at
    numpy speed and the bytes are not copied (a value keeps its line end). Otherwise the
    records are split like the careful pass does. None if the count disagrees with pyarrow's.
    """
    data = np.frombuffer(seg, np.uint8)
    ends = np.flatnonzero(data == 10)
    if len(ends) == n and n and ends[-1] == len(data) - 1 and b'"' not in seg:
        starts = np.r_[0, ends[:-1] + 1]
        body = ends - starts - (data[np.maximum(ends - 1, 0)] == 13)
        if bool((body > 0).all()):
            offsets = pa.py_buffer(np.r_[0, ends + 1].astype(np.int32))
            return pa.Array.from_buffers(pa.binary(), n, [None, offsets, pa.py_buffer(seg)])
    records = _records(seg, line)
    return pa.array([r for _, r in records], pa.binary()) if len(records) == n else None


def _to_chunk(
    table: pa.Table,
    d: _Dialect,
    source: str,
    raw: Any,
    rows_in: int,
    prior: pa.Table | None,
    records: pa.Array | None = None,
) -> Chunk:
    n = table.num_rows
    cols = {canon: table.column(c).combine_chunks() for canon, c in d.use.items()}
    problems = nz.Problems(n)
    problems.add(_empty_records(table, d, records), None, EMPTY_RECORD)
    if "ts" in cols:
        cols["ts"], bad = nz.parse_timestamps(cols["ts"], _ts_format(d, cols["ts"]), d.spec.ts_unit)
        if d.ts_format and d.ts_format.endswith("%S"):  # CIC files mix "8:55" and "08:55:58"
            short, bad2 = nz.parse_timestamps(table.column(d.use["ts"]), d.ts_format[:-3], d.spec.ts_unit)
            cols["ts"] = pc.coalesce(cols["ts"], short)
            bad &= bad2
        problems.add(bad, d.use["ts"], "unparseable timestamp")
        if d.variant == CIC_ORIGINAL and d.ts_format != "iso":
            cols["ts"] = _afternoon(cols["ts"], d)
    if "duration" in cols and d.spec.duration_unit != "s":
        scale = {"ms": 1e-3, "us": 1e-6, "ns": 1e-9}[d.spec.duration_unit]
        values, bad = _float(cols["duration"])
        problems.add(bad, d.use["duration"], "not a number")
        cols["duration"] = pc.multiply(values, scale)
    if "proto" in cols:
        cols["proto"] = _proto(cols["proto"])
    unknown: dict[str, int] = {}
    if d.label:
        detail = table.column(d.attack) if d.attack else None
        lab, atk, unknown = nz.labels(table.column(d.label), detail, n, d.spec.names_are_attacks, d.spec.benign)
        cols["label"], cols["attack_type"] = lab, atk
    flows = nz.conform(cols, n, source, problems)
    good, rejects = nz.split(flows, problems, source, raw, d.use)
    parts = [t for t in (prior, rejects) if t is not None and t.num_rows]
    all_rejects = pa.concat_tables(parts).sort_by("line") if len(parts) > 1 else parts[0] if parts else rejects
    if records is not None and problems.bad.any():
        records = records.filter(pa.array(~problems.bad))
    return Chunk(good, all_rejects, rows_in, unknown, records)


def _empty_records(table: pa.Table, d: _Dialect, records: pa.Array | None) -> np.ndarray:
    """Records with no value at all (``,,,,``: the original CIC-IDS2017 Thursday morning file
    ends in ~288,000 of them): every parsed column null, and the raw bytes only separators."""
    n = table.num_rows
    if not n or records is None:
        return np.zeros(n, bool)
    nulls = np.ones(n, bool)
    for name in table.column_names:
        nulls &= np.asarray(table.column(name).is_null().to_numpy(zero_copy_only=False), bool)
    if not nulls.any():
        return nulls
    strip = (d.sep + " \t\r\n").encode()
    for i in np.flatnonzero(nulls):
        nulls[i] = not records[int(i)].as_py().strip(strip)
    return nulls


def _float(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    return nz.parse_numbers(arr, pa.float64())


def _proto(arr: pa.Array) -> pa.Array:
    """IANA protocol numbers (CIC writes 6/17/0) → keywords (``protocols``); names are lower-cased."""
    text = pc.utf8_lower(pc.utf8_trim_whitespace(arr.cast(pa.string())))
    keys = pa.array(list(PROTO_NUMBERS))
    mapped = pa.array(list(PROTO_NUMBERS.values())).take(pc.index_in(text, value_set=keys))
    return pc.coalesce(mapped, text)


def _afternoon(secs: pa.Array, d: _Dialect) -> pa.Array:
    """CIC-IDS2017's original release writes a 12-hour clock without AM/PM (``7/7/2017 3:56`` is the
    DDoS at 15:56). Its capture ran 08:55-17:xx on 3-7 July 2017, so an hour of 1-7 on those days
    can only be afternoon: 12 h are added, and nothing else changes (a 24-hour file has no such hours)."""
    t = np.asarray(pc.fill_null(secs, np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)
    hour = np.floor(np.mod(t, 86400.0) / 3600.0)
    shift = (t >= CIC_CAPTURE[0]) & (t < CIC_CAPTURE[1]) & (hour >= 1) & (hour < 8)
    if not shift.any():
        return secs
    if not d.pm_logged:
        d.pm_logged = True
        log.info("%s: times at 1-7 o'clock read as afternoon (a 12-hour clock without AM/PM)", CIC_ORIGINAL)
    return pc.if_else(pa.array(shift), pc.add(secs, 43200.0), secs)


def _ts_format(d: _Dialect, arr: pa.Array) -> str | None:
    """Resolve ``dmy-auto`` once per file from the shape of the first values.

    ISO 8601 (``2017-07-06 12:39:06.818901``, the corrected CIC-IDS2017 release) or
    day/month/year (``3/7/2017 8:55``, the original release): day-first unless a month > 12
    shows. The choice and the header's variant are logged; a disagreement is a warning.
    """
    if d.spec.ts_format != "dmy-auto":
        return d.spec.ts_format
    if d.ts_format is None:
        values = [v.strip() for v in arr.cast(pa.string()).drop_null()[:2000].to_pylist()]
        iso = sum(bool(_ISO_SHAPE.match(v)) for v in values)
        dmy = sum(bool(_DMY_SHAPE.match(v)) for v in values)
        if iso > dmy:
            d.ts_format, shape, expected = "iso", "ISO 8601 (e.g. 2017-07-06 12:39:06.818901)", CIC_CORRECTED
        else:
            parts = [re.split(r"[/ ]", v) for v in values if "/" in v]
            firsts = [int(p[0]) for p in parts if p[0].isdigit()]
            seconds = [int(p[1]) for p in parts if len(p) > 1 and p[1].isdigit()]
            month_first = bool(seconds) and max(seconds) > 12 and (not firsts or max(firsts) <= 12)
            d.ts_format = ("%m/%d/%Y" if month_first else "%d/%m/%Y") + " %H:%M:%S"
            shape = ("month" if month_first else "day") + "-first m/d/Y H:M[:S] (e.g. 3/7/2017 8:55)"
            expected = CIC_ORIGINAL
        example = values[0][:40] if values else "no values"
        log.info("%s: timestamps read as %s, taken as UTC (first value %r)", d.variant or d.spec.name, shape, example)
        if d.variant in (CIC_ORIGINAL, CIC_CORRECTED) and d.variant != expected:
            log.warning(
                "the header looks like the %s but the timestamps like the %s; following the timestamps",
                d.variant,
                expected,
            )
    return d.ts_format
