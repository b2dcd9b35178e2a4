"""Turn parsed columns (any reader, canonical names) into FLOW_SCHEMA rows plus row problems.

Every reader hands ``conform`` a dict of Arrow arrays named like the canonical schema,
in whatever types its format gave (strings, floats, epoch seconds ...). ``conform``
converts, range-checks and flags each bad row once (the first problem wins) in a
``Problems`` record; ``split`` then separates good rows from quarantined ones. Nothing is
dropped silently: every input row is either a flow or a reject.

Row rules (documented in the README): timestamps must lie in [1990-01-01, 2100-01-01);
ports in 0..65535; byte and packet counts >= 0; duration finite and >= 0; fields listed
as required must be present. Label vocabularies: see ``label_value``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.common.schema import FLOW_SCHEMA

__all__ = [
    "REJECT_SCHEMA",
    "Problems",
    "conform",
    "split",
    "parse_numbers",
    "parse_timestamps",
    "labels",
    "attack_name",
    "label_value",
    "raw_text",
    "time_origin",
    "RELATIVE_TS",
]

REJECT_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("line", pa.int64()),
        ("field", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),
    ]
)
RAW_LIMIT = 4096  # characters of the original record kept in rejects.parquet
TS_MIN, TS_MAX = 631152000.0, 4102444800.0  # 1990-01-01, 2100-01-01 (epoch seconds)
COUNT_COLUMNS = ("src_bytes", "dst_bytes", "src_pkts", "dst_pkts", "src_ip_bytes", "dst_ip_bytes")
BENIGN_WORDS = frozenset({"benign", "normal", "0", "false", "legitimate", "clean"})
MALICIOUS_WORDS = frozenset({"malicious", "attack", "anomaly", "anomalous", "1", "true", "malware"})
UNKNOWN_WORDS = frozenset({"", "-", "(empty)", "unknown", "background", "?", "none", "nan"})
_ACRONYMS = {"DDoS": "ddos", "DoS": "dos", "C&C": "c&c", "XSS": "xss"}
RELATIVE_TS = (
    "timestamp out of range: before 1990, so probably seconds since the capture started; "
    "pass --time-origin with the capture's start time"
)
_TIME_ORIGIN: ContextVar[float | None] = ContextVar("time_origin", default=None)


@contextmanager
def time_origin(seconds: float | None) -> Iterator[None]:
    """While active, ``conform`` adds ``seconds`` (epoch) to every timestamp: for logs whose ``ts``
    counts from the capture's start (Zeek run on a pcap with relative times) — ``--time-origin``."""
    token = _TIME_ORIGIN.set(seconds)
    try:
        yield
    finally:
        _TIME_ORIGIN.reset(token)


def raw_text(raw: bytes | bytearray) -> str:
    """The first RAW_LIMIT bytes of a record as text; a character cut in half becomes U+FFFD."""
    return bytes(raw[:RAW_LIMIT]).decode("utf-8", "replace")


class Problems:
    """Row problems of one parsed block: a flag, field and reason per row (first one wins)."""

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, bool)
        self.field = np.full(n, None, object)
        self.reason = np.full(n, None, object)

    def add(self, mask: Any, field: str | None, reason: str | np.ndarray) -> None:
        """Flag rows where ``mask`` is true (pyarrow or numpy booleans; null counts as false)."""
        m = _np_bool(mask) & ~self.bad
        if m.any():
            self.field[m] = field
            self.reason[m] = reason[m] if isinstance(reason, np.ndarray) else reason
            self.bad |= m

    def count(self) -> int:
        return int(self.bad.sum())


def _np_bool(mask: Any) -> np.ndarray:
    if isinstance(mask, (pa.Array, pa.ChunkedArray)):
        return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), bool)
    return np.asarray(mask, bool)


def parse_numbers(arr: pa.Array, typ: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Strings (or any values) → ``typ``; values that do not parse become null and are flagged.

    Vectorised cast first; only when it fails are values checked one by one. Integers
    accept ``0x..`` hex (UNSW-NB15 writes some ports that way).
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), typ), np.zeros(len(arr), bool)
    try:
        return pc.cast(arr, typ), np.zeros(len(arr), bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    bad = np.zeros(len(arr), bool)
    out: list[Any] = []
    integer = pa.types.is_integer(typ)
    for i, v in enumerate(arr.cast(pa.string()).to_pylist() if not pa.types.is_string(arr.type) else arr.to_pylist()):
        if v is None:
            out.append(None)
            continue
        try:
            s = v.strip()
            x: Any = (int(s, 16) if s[:2].lower() == "0x" else int(s)) if integer else float(s)
            if integer and not -(2**63) <= x < 2**63:
                raise ValueError
            out.append(x)
        except ValueError:
            bad[i] = True
            out.append(None)
    return pa.array(out, typ), bad


def parse_timestamps(arr: pa.Array, fmt: str | None = None, unit: str = "s") -> tuple[pa.Array, np.ndarray]:
    """Any timestamp representation → (float epoch seconds, unparseable mask).

    Numbers (or numeric strings) are epoch values in ``unit``; other strings are ISO 8601
    (offset or ``Z``; no offset means UTC) or follow the strptime ``fmt``.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[unit]
    if pa.types.is_timestamp(arr.type):
        # The stored count in the column's own unit: casting year 9999 (or 2**62 s) to µs would overflow.
        count = pc.cast(arr, pa.int64())
        if arr.type.unit == "ns":
            count = pc.divide(count, 1000)
        per_second = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e6}[arr.type.unit]
        return pc.divide(pc.cast(count, pa.float64(), safe=False), per_second), np.zeros(n, bool)
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        # safe=False: an integer past 2**53 loses precision instead of raising (it is out of range anyway)
        return pc.multiply(pc.cast(arr, pa.float64(), safe=False), scale), np.zeros(n, bool)
    if pa.types.is_null(arr.type):
        return pa.nulls(n, pa.float64()), np.zeros(n, bool)
    arr = pc.utf8_trim_whitespace(arr.cast(pa.string()))
    if fmt and fmt not in ("iso", "epoch"):
        parsed = pc.strptime(arr, format=fmt, unit="us", error_is_null=True)
        secs = pc.multiply(pc.cast(pc.cast(parsed, pa.int64()), pa.float64(), safe=False), 1e-6)
        return secs, _np_bool(pc.and_(pc.is_valid(arr), pc.is_null(parsed)))
    nums, bad = parse_numbers(arr, pa.float64())
    if not bad.any():
        return pc.multiply(nums, scale), bad
    iso = _parse_iso(pc.if_else(pa.array(bad), arr, pa.scalar(None, pa.string())))
    out = pc.if_else(pa.array(bad), iso, pc.multiply(nums, scale))
    return out, _np_bool(pc.and_(pa.array(bad), pc.is_null(iso)))


def _parse_iso(arr: pa.Array) -> pa.Array:
    """ISO 8601 strings → epoch seconds (null where unparseable); naive times are UTC."""
    for typ in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
        try:
            return pc.multiply(pc.cast(pc.cast(pc.cast(arr, typ), pa.int64()), pa.float64(), safe=False), 1e-6)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    import datetime as dt

    out: list[float | None] = []
    for v in arr.to_pylist():
        try:
            when = dt.datetime.fromisoformat(v) if v else None
            out.append(None if when is None else (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp())
        except (ValueError, OverflowError):
            out.append(None)
    return pa.array(out, pa.float64())


def attack_name(value: str) -> str:
    """Attack labels in snake lower case: ``PartOfAHorizontalPortScan`` → ``part_of_a_horizontal_port_scan``,
    ``C&C-HeartBeat`` → ``c&c_heart_beat``, ``Web Attack – Brute Force`` → ``web_attack_brute_force``."""
    s = value.strip()
    for token, repl in _ACRONYMS.items():
        s = re.sub(rf"(?<![A-Za-z]){re.escape(token)}(?![a-z])", f" {repl} ", s)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = re.sub(r"([A-Z])([A-Z][a-z])", r"\1_\2", s)
    return re.sub(r"[^a-z0-9&]+", "_", s.lower()).strip("_")


def label_value(value: str | None, names_are_attacks: bool, benign: frozenset[str] = BENIGN_WORDS) -> int | None:
    """0 benign, 1 malicious, None unknown.

    ``names_are_attacks``: the column holds attack names (CIC-IDS2017 ``Label``), so any
    value that is not benign or unknown is malicious. Otherwise (Zeek ``label``) only the
    malicious vocabulary counts and anything else is unknown.
    """
    if value is None:
        return None
    v = value.strip().lower()
    if v in benign:
        return 0
    if v in UNKNOWN_WORDS:
        return None
    if v in MALICIOUS_WORDS or names_are_attacks:
        return 1
    return None


def _map_unique(arr: pa.Array, fn: Callable[[str], Any], typ: pa.DataType) -> pa.Array:
    """Apply ``fn`` once per distinct value (labels have tiny vocabularies) and broadcast."""
    arr = arr.cast(pa.string())
    uniq = pc.unique(arr)
    mapped = pa.array([None if v is None else fn(v) for v in uniq.to_pylist()], typ)
    return mapped.take(pc.index_in(arr, value_set=uniq))


def labels(
    label: pa.Array | None,
    detail: pa.Array | None,
    n: int,
    names_are_attacks: bool = False,
    benign: frozenset[str] = BENIGN_WORDS,
) -> tuple[pa.Array, pa.Array, dict[str, int]]:
    """(label int8, attack_type string, unknown label values with counts).

    attack_type is the normalised ``detail`` (detailed-label, attack_cat) when present,
    else the label name itself for attack-name columns; always null unless label == 1.
    """
    if label is None:
        return pa.nulls(n, pa.int8()), pa.nulls(n, pa.string()), {}
    label = label.combine_chunks() if isinstance(label, pa.ChunkedArray) else label
    label = label.cast(pa.string())
    lab = _map_unique(label, lambda v: label_value(v, names_are_attacks, benign), pa.int8())
    unknown = pc.and_(pc.is_null(lab), pc.is_valid(label))
    unknown_counts: dict[str, int] = {}
    if pc.any(unknown).as_py():
        unknown_values = pc.utf8_trim_whitespace(label.filter(unknown))
        keep = pc.invert(pc.is_in(pc.utf8_lower(unknown_values), value_set=pa.array(sorted(UNKNOWN_WORDS))))
        counts = pc.value_counts(unknown_values.filter(keep))
        unknown_counts = {c["values"].as_py(): c["counts"].as_py() for c in counts}

    def name(v: str) -> str | None:
        return None if v.strip().lower() in UNKNOWN_WORDS | benign else attack_name(v) or None

    atk = _map_unique(detail, name, pa.string()) if detail is not None else pa.nulls(n, pa.string())
    if names_are_attacks:
        atk = pc.coalesce(atk, _map_unique(label, name, pa.string()))
    atk = pc.if_else(pc.fill_null(pc.equal(lab, 1), False), atk, pa.scalar(None, pa.string()))
    return lab, atk, unknown_counts


def conform(
    cols: dict[str, pa.Array], n: int, source: str, problems: Problems, required: Sequence[str] = ()
) -> pa.Table:
    """Canonical columns in any types → a FLOW_SCHEMA table of ``n`` rows; bad rows flagged.

    ``cols["ts"]`` is epoch seconds (float) — readers convert their own formats first.
    Flagged rows stay in the table (with nulls where values were bad) until ``split``.
    """
    out: dict[str, pa.Array] = {}
    for name in required:
        if name not in cols:
            continue
        problems.add(pc.is_null(cols[name]), name, "missing value")
    if "ts" in cols:
        secs = cols["ts"]
        origin = _TIME_ORIGIN.get()
        if origin is not None:
            secs = pc.add(pc.cast(secs, pa.float64()), origin)
        finite = pc.is_finite(secs)
        ok = pc.and_(pc.and_(pc.greater_equal(secs, TS_MIN), pc.less(secs, TS_MAX)), finite)
        if origin is None:  # small non-negative numbers: relative to the capture start, not epoch seconds
            relative = pc.and_(pc.greater_equal(secs, 0.0), pc.less(secs, TS_MIN))
            problems.add(pc.and_(pc.is_valid(secs), relative), "ts", RELATIVE_TS)
        problems.add(pc.and_(pc.is_valid(secs), pc.invert(ok)), "ts", "timestamp out of range")
        micros = pc.cast(pc.round(pc.multiply(pc.if_else(ok, secs, None), 1e6)), pa.int64())
        out["ts"] = micros.cast(pa.timestamp("us", tz="UTC"))
    for field in FLOW_SCHEMA:
        name, typ = field.name, field.type
        if name == "ts" or name not in cols:
            continue
        arr = cols[name]
        if pa.types.is_string(typ):
            out[name] = arr.cast(pa.string()) if not pa.types.is_string(arr.type) else arr
            continue
        values, bad = parse_numbers(arr, pa.int64() if pa.types.is_integer(typ) else pa.float64())
        problems.add(bad, name, "not a number")
        if name in ("src_port", "dst_port"):
            problems.add(pc.or_(pc.less(values, 0), pc.greater(values, 65535)), name, "port out of range")
            values = pc.if_else(pc.and_(pc.greater_equal(values, 0), pc.less_equal(values, 65535)), values, None)
        elif name in COUNT_COLUMNS:
            problems.add(pc.less(values, 0), name, "negative value")
        elif name == "duration":
            problems.add(pc.invert(pc.is_finite(values)), name, "not finite")
            problems.add(pc.less(values, 0), name, "negative value")
            values = pc.if_else(pc.is_finite(values), values, None)
        elif name == "label":
            values = pc.if_else(pc.is_in(values, value_set=pa.array([0, 1])), values, None)
        out[name] = values.cast(typ)
    out["source"] = pa.array([source], pa.string()).take(pa.array(np.zeros(n, np.int32)))
    arrays = [out.get(f.name, pa.nulls(n, f.type)) for f in FLOW_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=FLOW_SCHEMA)


def split(
    table: pa.Table,
    problems: Problems,
    source: str,
    raw: Callable[[np.ndarray], tuple[list[int | None], list[str]]],
    field_names: dict[str, str] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """(good rows, rejects table). ``raw(indices)`` returns line numbers and original text;
    ``field_names`` maps canonical names back to the source's own (``src_port`` → ``id.orig_p``)."""
    if not problems.bad.any():
        return table, REJECT_SCHEMA.empty_table()
    idx = np.flatnonzero(problems.bad)
    lines, texts = raw(idx)
    rejects = pa.table(
        {
            "source": [source] * len(idx),
            "line": pa.array(lines, pa.int64()),
            "field": pa.array([(field_names or {}).get(f, f) for f in problems.field[idx].tolist()], pa.string()),
            "reason": pa.array(problems.reason[idx].tolist(), pa.string()),
            "raw": [t[:RAW_LIMIT] for t in texts],
        },
        schema=REJECT_SCHEMA,
    )
    return table.filter(pa.array(~problems.bad)), rejects


def reject_rows(source: str, rows: list[tuple[int | None, str | None, str, str]]) -> pa.Table:
    """Rejects found before parsing (line, field, reason, raw) → REJECT_SCHEMA table."""
    if not rows:
        return REJECT_SCHEMA.empty_table()
    line, field, reason, raw = zip(*rows, strict=True)
    return pa.table(
        {
            "source": [source] * len(rows),
            "line": pa.array(line, pa.int64()),
            "field": pa.array(field, pa.string()),
            "reason": pa.array(reason, pa.string()),
            "raw": [r[:RAW_LIMIT] for r in raw],
        },
        schema=REJECT_SCHEMA,
    )
