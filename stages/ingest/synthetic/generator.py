"""A seeded, labelled generator of realistic Zeek conn traffic (``synthetic://`` sources).

The period is cut into time slices of ~250k benign flows each (equal shares of the
diurnal intensity, so busy afternoons get short slices). Each slice is generated from
its own random stream and holds its benign flows plus every attack flow that falls in
it, sorted by ``ts`` — so ``generate_batches`` streams 10M rows in bounded memory, and
the output depends only on the arguments, never on how it is consumed.

Benign traffic (``traffic.py``): internal clients (about 3·sqrt(rows)) talking to DNS,
web, mail, file, ssh/rdp servers inside and to Zipf-popular sites outside, plus some
inbound traffic to the DMZ; intensity follows the working day (peak ~14:00, quiet
nights, weekends at ~40%). Attacks (``attacks.py``): ``attack_share`` of the rows,
split across the scenarios in ``attacks.SCENARIOS``, each in several episodes spread
over the whole period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from stages.common.schema import FLOW_SCHEMA

from . import attacks, traffic

__all__ = ["SCENARIOS", "SLICE_ROWS", "generate", "generate_batches", "parse_uri"]

SCENARIOS = attacks.SCENARIOS
SLICE_ROWS = 250_000  # benign flows per slice; a batch adds that slice's attack flows
_BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)
_UID_LEN = 18  # 'C' + 17 base62 characters, like Zeek's


def generate(
    rows: int,
    seed: int = 7,
    attack_share: float = 0.02,
    days: float = 2.0,
    start: str = "2026-01-05T00:00:00Z",
) -> pa.Table:
    """All rows as one table in ``FLOW_SCHEMA`` (same arguments → identical table)."""
    batches = list(generate_batches(rows, seed, attack_share, days, start))
    return pa.Table.from_batches(batches, schema=FLOW_SCHEMA)


def generate_batches(
    rows: int,
    seed: int = 7,
    attack_share: float = 0.02,
    days: float = 2.0,
    start: str = "2026-01-05T00:00:00Z",
) -> Iterator[pa.RecordBatch]:
    """Yield RecordBatches in ``FLOW_SCHEMA``, sorted by ``ts``, about 250k rows each.

    ``rows`` is the exact total; ``attack_share`` of them (rounded) are attacks;
    ``days`` is the length of the period that starts at ``start`` (ISO 8601, UTC).
    Raises ValueError on out-of-range arguments.
    """
    if rows < 0 or not 0.0 <= attack_share <= 1.0 or not days > 0:
        raise ValueError(f"need rows >= 0, 0 <= attack_share <= 1, days > 0 (got {rows}, {attack_share}, {days})")
    if rows == 0:
        return
    t0 = _parse_start(start)
    period = days * 86400.0
    rng = np.random.default_rng([seed, 0])
    hosts = traffic.Hosts.build(rng, rows)
    attack_rows = int(round(rows * attack_share))
    episodes = attacks.plan(rng, attack_rows, period, t0)
    bounds = [(float(t.min()), float(t.max())) for t in (attacks.episode_times(e, seed, period) for e in episodes)]
    grid, cum = _intensity(t0, period)
    benign = rows - attack_rows
    n_slices = max(1, -(-benign // SLICE_ROWS))
    edges = np.interp(np.linspace(0, 1, n_slices + 1), cum, grid)
    edges[0], edges[-1] = -np.inf, np.inf
    source = f"synthetic:seed={seed}"
    for i in range(n_slices):
        srng = np.random.default_rng([seed, 3, i])
        count = benign // n_slices + (1 if i < benign % n_slices else 0)
        u = srng.uniform(i / n_slices, (i + 1) / n_slices, count)
        frames = [traffic.benign(srng, hosts, np.interp(u, cum, grid))]
        for ep, (lo, hi) in zip(episodes, bounds, strict=True):
            if hi >= edges[i] and lo < edges[i + 1]:
                f = attacks.flows(ep, seed, period, hosts)
                keep = (f["ts"] >= edges[i]) & (f["ts"] < edges[i + 1])
                frames.append({k: v[keep] for k, v in f.items()})
        yield to_batch(_concat(frames), t0, seed, i, source)


def _parse_start(start: str) -> float:
    try:
        when = dt.datetime.fromisoformat(start)
    except ValueError as exc:
        raise ValueError(f"start {start!r} is not an ISO 8601 timestamp like 2026-01-05T00:00:00Z") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _intensity(t0: float, period: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-minute grid (s from start) and the normalised cumulative benign intensity on it.

    Working days: a floor of 0.15 plus a bump peaking at 14:00 (sd 3.5 h); weekends x0.4.
    """
    grid = np.append(np.arange(0.0, period, 60.0), period)
    mid = t0 + (grid[:-1] + grid[1:]) / 2
    hour = (mid % 86400) / 3600
    weekday = ((mid // 86400).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (3)
    rate = 0.15 + np.exp(-0.5 * ((hour - 14.0) / 3.5) ** 2)
    rate *= np.where(weekday >= 5, 0.4, 1.0)
    cum = np.concatenate([[0.0], np.cumsum(rate * np.diff(grid))])
    return grid, cum / cum[-1]


def _concat(frames: list[traffic.Frame]) -> traffic.Frame:
    out = {k: np.concatenate([f[k] for f in frames]) for k in frames[0]}
    order = np.argsort(out["ts"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection on uint64, so distinct inputs give distinct uids."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def uids(seed: int, slice_index: int, n: int) -> pa.Array:
    """Zeek-like connection uids ('C' + 17 base62), unique within one generated data set."""
    key = np.uint64((seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
    x = _mix64((np.uint64(slice_index) << np.uint64(32) | np.arange(n, dtype=np.uint64)) ^ key)
    y = _mix64(x ^ np.uint64(0x5DEECE66D))
    chars = np.empty((n, _UID_LEN), np.uint8)
    chars[:, 0] = ord("C")
    for pos, (val, width) in enumerate(((x, 11), (y, 6))):
        v = val.copy()
        for j in range(width):
            chars[:, 1 + pos * 11 + j] = _BASE62[(v % np.uint64(62)).astype(np.intp)]
            v //= np.uint64(62)
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * _UID_LEN).tobytes())
    return pa.Array.from_buffers(pa.string(), n, [None, offsets, pa.py_buffer(chars.tobytes())])


def ip_strings(addr: np.ndarray) -> pa.Array:
    """uint32 addresses → dotted-quad strings (each distinct address formatted once)."""
    uniq, inverse = np.unique(addr, return_inverse=True)
    text = [f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}" for a in uniq.tolist()]
    return pa.array(text, pa.string()).take(pa.array(inverse.astype(np.int32)))


def _vocab(values: tuple[str, ...], codes: np.ndarray) -> pa.Array:
    """Codes into ``values`` → strings; code -1 → null."""
    table = pa.array([*values, None], pa.string())
    return table.take(pa.array(np.where(codes < 0, len(values), codes).astype(np.int32)))


def to_batch(f: traffic.Frame, t0: float, seed: int, slice_index: int, source: str) -> pa.RecordBatch:
    """A frame → RecordBatch in FLOW_SCHEMA (NaN duration and -1 byte counts become null)."""
    n = len(f["ts"])
    ts_us = np.rint((t0 + f["ts"]) * 1e6).astype(np.int64)
    dur = f["duration"]

    def counts(a: np.ndarray) -> pa.Array:
        return pa.array(a, pa.int64(), mask=a < 0)

    cols = {
        "ts": pa.array(ts_us, pa.timestamp("us", tz="UTC")),
        "uid": uids(seed, slice_index, n),
        "src_ip": ip_strings(f["src"]),
        "src_port": pa.array(f["sport"], pa.int32()),
        "dst_ip": ip_strings(f["dst"]),
        "dst_port": pa.array(f["dport"], pa.int32()),
        "proto": _vocab(traffic.PROTOS, f["proto"]),
        "service": _vocab(traffic.SERVICES, f["service"]),
        "duration": pa.array(np.round(dur, 6), pa.float64(), mask=np.isnan(dur)),
        "src_bytes": counts(f["sbytes"]),
        "dst_bytes": counts(f["dbytes"]),
        "src_pkts": counts(f["spkts"]),
        "dst_pkts": counts(f["dpkts"]),
        "src_ip_bytes": counts(f["sipb"]),
        "dst_ip_bytes": counts(f["dipb"]),
        "conn_state": _vocab(traffic.STATES, f["state"]),
        "history": _vocab(traffic.HISTORIES, f["history"]),
        "label": pa.array(f["label"], pa.int8()),
        "attack_type": _vocab(SCENARIOS, f["attack"]),
        "source": pa.array([source], pa.string()).take(pa.array(np.zeros(n, np.int32))),
    }
    return pa.RecordBatch.from_arrays(list(cols.values()), schema=FLOW_SCHEMA)


def parse_uri(uri: str) -> dict[str, Any]:
    """``synthetic://?rows=100000&seed=7&attack_share=0.02&days=2&start=...`` → generate() kwargs.

    Raises InputError naming the bad key; all keys are optional (rows defaults to 100000).
    """
    from urllib.parse import parse_qsl, urlparse

    from stages.common.errors import InputError

    parsed = urlparse(uri)
    kinds: dict[str, type] = {"rows": int, "seed": int, "attack_share": float, "days": float, "start": str}
    args: dict[str, Any] = {"rows": 100_000}
    for key, value in parse_qsl(parsed.query, keep_blank_values=True):
        if key not in kinds:
            raise InputError(f"{uri}: unknown key {key!r}; use {', '.join(kinds)}")
        try:
            args[key] = kinds[key](float(value)) if kinds[key] is int else kinds[key](value)
        except ValueError as exc:
            raise InputError(f"{uri}: {key}={value!r} is not a valid {kinds[key].__name__}") from exc
    if args["rows"] < 0 or not 0 <= args.get("attack_share", 0.02) <= 1 or args.get("days", 2.0) <= 0:
        raise InputError(f"{uri}: need rows >= 0, 0 <= attack_share <= 1 and days > 0")
    try:
        _parse_start(args.get("start", "2026-01-05T00:00:00Z"))
    except ValueError as exc:
        raise InputError(f"{uri}: {exc}") from exc
    return args
