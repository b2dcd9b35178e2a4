"""Contextual features over trailing time windows (per source, pair and destination).

A flow at time ``t`` sees only flows in ``(t - w, t]``: the windows are causal, so a
feature never uses the future and the train part of the split never sees the holdout.
Everything is vectorised with sorted keys: rows are ordered by ``group * span + t``
(``span`` > time range + largest window, so groups never overlap), and a window's
start is one ``searchsorted`` away. Distinct counts are exact: each occurrence of a
(group, value) is "alive" from its time until the next occurrence of the same value or
until it leaves the window; the number alive at ``t`` is starts-so-far minus ends-so-far.

Times are integer milliseconds from the first flow (``rel_ms``). Cost: a few sorts per
group kind, O(n log n); memory: a handful of int64 arrays of length n.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["WINDOWS", "PERIOD_WINDOW", "Flows", "Grouped", "context_features", "context_groups"]

WINDOWS: dict[str, int] = {"1m": 60_000, "10m": 600_000}
"""Window label → length in ms: short bursts (scans, floods) and slower campaigns."""
PERIOD_WINDOW: tuple[str, int] = ("1h", 3_600_000)
"""Periodicity needs several inter-arrival gaps; beacons every 30-300 s give 12-120 per hour."""
MIN_JITTER_GAPS = 3
"""Gap differences needed before the jitter is trusted; fewer → neutral value 1.0 (Poisson-like)."""


@dataclass
class Flows:
    """The columns contextual features need, in time order; None when the input lacks them."""

    rel_ms: np.ndarray  # int64 ms since the first flow, non-decreasing
    src: np.ndarray | None = None  # int32 codes of src_ip
    dst: np.ndarray | None = None  # int32 codes of dst_ip
    port: np.ndarray | None = None  # int32 dst_port (-1 when unknown)
    failed: np.ndarray | None = None  # bool: conn_state in the failed group
    src_bytes: np.ndarray | None = None  # int64 (integer sums are exact)
    dst_bytes: np.ndarray | None = None  # int64

    @property
    def span(self) -> int:
        return int(self.rel_ms[-1]) + max(*WINDOWS.values(), PERIOD_WINDOW[1]) + 1 if len(self.rel_ms) else 1


def _index_dtype(n: int) -> type:
    return np.int32 if n < 2**31 - 1 else np.int64


class Grouped:
    """Rows sorted by (group, time); computations happen in sorted space, ``unsort`` maps back.

    Row indexes are stored as int32 (under 2^31 rows) and times are derived from the
    keys when needed: at 10M rows one instance holds ~300 MB, and only one lives at a time.
    """

    def __init__(self, group: np.ndarray, rel_ms: np.ndarray, span: int) -> None:
        self.span = span
        idx = _index_dtype(len(group))
        key = group.astype(np.int64) * span + rel_ms
        self.order: np.ndarray = np.argsort(key, kind="stable").astype(idx)
        self.key = key[self.order]
        del key
        self.group = group[self.order].astype(idx)
        self._hi = np.searchsorted(self.key, self.key, "right").astype(idx)
        self._lo: dict[int, np.ndarray] = {}

    @property
    def t(self) -> np.ndarray:
        """Times (ms) in sorted order."""
        return self.key - self.group.astype(np.int64) * self.span

    @property
    def hi(self) -> np.ndarray:
        """One past the last row of each row's group at its time (the window's end, ties included)."""
        return self._hi

    def lo(self, w: int) -> np.ndarray:
        if w not in self._lo:
            self._lo[w] = np.searchsorted(self.key, self.key - w, "right").astype(self._hi.dtype)
        return self._lo[w]

    def count(self, w: int) -> np.ndarray:
        """Rows of the same group in ``(t - w, t]`` (the row itself included)."""
        return self._hi - self.lo(w)

    def total(self, values: np.ndarray, w: int, presorted: bool = False) -> np.ndarray:
        """Sum of ``values`` over the same group's rows in ``(t - w, t]``."""
        v = values if presorted else values[self.order]
        cs = np.concatenate([[0], np.cumsum(v, dtype=np.float64 if v.dtype.kind == "f" else np.int64)])
        return cs[self._hi] - cs[self.lo(w)]

    def distinct(self, values: np.ndarray, w: int) -> np.ndarray:
        """Distinct ``values`` among the same group's rows in ``(t - w, t]`` (exact)."""
        v = values[self.order].astype(np.int64)
        nv = int(v.max()) + 2 if len(v) else 1
        pair = self.group.astype(np.int64) * nv + (v + 1)
        del v
        # Next occurrence of the same (group, value): sort by (pair, t); the sort is stable
        # and rows are already in time order within a group, so ties keep their order.
        by_pair = np.argsort(pair, kind="stable")
        pair = pair[by_pair]
        t_pair = self.t[by_pair]
        end = t_pair + w
        same_next = pair[1:] == pair[:-1]
        del pair
        end[:-1] = np.where(same_next, np.minimum(t_pair[1:], end[:-1]), end[:-1])
        del t_pair, same_next
        ends = np.empty_like(end)
        ends[by_pair] = end
        del end, by_pair
        ends += self.group.astype(np.int64) * self.span
        ends.sort()
        return self._hi - np.searchsorted(ends, self.key, "right")

    def unsort(self, values: np.ndarray) -> np.ndarray:
        out = np.empty_like(values)
        out[self.order] = values
        return out


def _pair_codes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense int64 codes of (a, b) pairs."""
    combined = a.astype(np.int64) * (int(b.max()) + 2 if len(b) else 1) + (b.astype(np.int64) + 1)
    return np.unique(combined, return_inverse=True)[1].astype(np.int64)


def _periodicity(g: Grouped, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Jitter and regularity of the gaps between a pair's contacts inside the window.

    jitter = mean |Δgap| / mean gap: ≈1 for random (Poisson) arrivals, →0 for
    machine-regular ones (C2 beacons, scripted logins). Built from plain sums, not sums
    of squares, which lose precision over long cumulative runs. With few gaps a low
    jitter happens by chance, so regularity = (1 - jitter) · sqrt(gap differences)
    weighs it by the evidence: ~N(0, 1) for random traffic, 4-10 for a beacon's hour.
    Pairs with fewer than ``MIN_JITTER_GAPS`` differences get the neutral 1.0 / 0.0.

    Only gaps between contacts inside the window count (not the gap back to an older
    contact), so like every other feature it reads no flow older than its window: a
    partition or batch needs exactly one window of earlier flows to get the values a
    single pass over all flows gives.
    """
    n = len(g.key)
    t = g.t
    lo, hi = g.lo(w).astype(np.int64), g.hi.astype(np.int64)
    count = hi - lo
    # the window's gaps telescope: their sum is its last contact's time minus its first's
    n_gap = count - 1
    mean_gap = (t[hi - 1] - t[lo]) / np.maximum(n_gap, 1)
    # |Δgap| of row j needs rows j-1 and j-2 of its pair; inside the window from its third row on
    second = np.zeros(n, dtype=bool)
    second[2:] = g.group[2:] == g.group[:-2]
    dgap = np.zeros(n, dtype=np.int64)
    dgap[2:] = np.abs((t[2:] - t[1:-1]) - (t[1:-1] - t[:-2]))
    dgap[~second] = 0
    cs = np.concatenate([[0], np.cumsum(dgap)])
    n_dgap = np.maximum(count - 2, 0)
    mean_dgap = (cs[hi] - cs[np.minimum(lo + 2, hi)]) / np.maximum(n_dgap, 1)
    ok = (n_dgap >= MIN_JITTER_GAPS) & (mean_gap > 0)
    jitter = np.clip(np.where(ok, mean_dgap / np.where(mean_gap > 0, mean_gap, 1.0), 1.0), 0.0, 3.0)
    regularity = np.where(ok, (1.0 - np.minimum(jitter, 1.0)) * np.sqrt(n_dgap), 0.0)
    return jitter, regularity


def _share(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return num / np.maximum(den, 1)


# Builders get the rows grouped by source, destination or pair and return {feature: values in time order}.
Builder = Callable[[Flows, Grouped], dict[str, np.ndarray]]


def _src_conns(f: Flows, s: Grouped) -> dict[str, np.ndarray]:
    return {f"src_conns_{k}": s.unsort(np.log1p(s.count(w))) for k, w in WINDOWS.items()}


def _src_distinct_dst(f: Flows, s: Grouped) -> dict[str, np.ndarray]:
    assert f.dst is not None
    return {f"src_distinct_dst_{k}": s.unsort(np.log1p(s.distinct(f.dst, w))) for k, w in WINDOWS.items()}


def _src_distinct_port(f: Flows, s: Grouped) -> dict[str, np.ndarray]:
    assert f.port is not None
    return {f"src_distinct_port_{k}": s.unsort(np.log1p(s.distinct(f.port, w))) for k, w in WINDOWS.items()}


def _src_failed_share(f: Flows, s: Grouped) -> dict[str, np.ndarray]:
    assert f.failed is not None
    failed = f.failed.astype(np.int64)
    return {f"src_failed_share_{k}": s.unsort(_share(s.total(failed, w), s.count(w))) for k, w in WINDOWS.items()}


def _pair_conns(f: Flows, p: Grouped) -> dict[str, np.ndarray]:
    return {f"pair_conns_{k}": p.unsort(np.log1p(p.count(w))) for k, w in WINDOWS.items()}


def _pair_distinct_port(f: Flows, p: Grouped) -> dict[str, np.ndarray]:
    assert f.port is not None
    return {f"pair_distinct_port_{k}": p.unsort(np.log1p(p.distinct(f.port, w))) for k, w in WINDOWS.items()}


def _pair_bytes_asym(f: Flows, p: Grouped) -> dict[str, np.ndarray]:
    assert f.src_bytes is not None and f.dst_bytes is not None
    w = WINDOWS["10m"]
    out_b, in_b = p.total(f.src_bytes, w).astype(np.float64), p.total(f.dst_bytes, w).astype(np.float64)
    return {"pair_bytes_asym_10m": p.unsort((out_b - in_b) / (out_b + in_b + 1.0))}


def _pair_periodicity(f: Flows, p: Grouped) -> dict[str, np.ndarray]:
    k, w = PERIOD_WINDOW
    jitter, regularity = _periodicity(p, w)
    return {f"pair_gap_jitter_{k}": p.unsort(jitter), f"pair_regularity_{k}": p.unsort(regularity)}


def _dst_fan_in(f: Flows, d: Grouped) -> dict[str, np.ndarray]:
    assert f.src is not None
    out = {f"dst_distinct_src_{k}": d.unsort(np.log1p(d.distinct(f.src, w))) for k, w in WINDOWS.items()}
    out["dst_conns_1m"] = d.unsort(np.log1p(d.count(WINDOWS["1m"])))
    return out


def _dst_failed_share(f: Flows, d: Grouped) -> dict[str, np.ndarray]:
    assert f.failed is not None
    w = WINDOWS["1m"]
    return {"dst_failed_share_1m": d.unsort(_share(d.total(f.failed.astype(np.int64), w), d.count(w)))}


GROUPS: dict[str, tuple[tuple[str, ...], str, Builder]] = {
    "src_conns": (("src",), "src", _src_conns),
    "src_distinct_dst": (("src", "dst"), "src", _src_distinct_dst),
    "src_distinct_port": (("src", "port"), "src", _src_distinct_port),
    "src_failed_share": (("src", "failed"), "src", _src_failed_share),
    "pair_conns": (("src", "dst"), "pair", _pair_conns),
    "pair_distinct_port": (("src", "dst", "port"), "pair", _pair_distinct_port),
    "pair_bytes_asym": (("src", "dst", "src_bytes", "dst_bytes"), "pair", _pair_bytes_asym),
    "pair_periodicity": (("src", "dst"), "pair", _pair_periodicity),
    "dst_fan_in": (("src", "dst"), "dst", _dst_fan_in),
    "dst_failed_share": (("dst", "failed"), "dst", _dst_failed_share),
}
"""group → (Flows fields it needs, how rows are grouped, builder); this order is the feature order."""


FIELD_COLUMNS = {
    "rel_ms": "ts",
    "src": "src_ip",
    "dst": "dst_ip",
    "port": "dst_port",
    "failed": "conn_state",
    "src_bytes": "src_bytes",
    "dst_bytes": "dst_bytes",
}
"""``Flows`` field → the canonical column it comes from (for skip reasons)."""


def context_groups(available: set[str]) -> tuple[list[str], dict[str, str]]:
    """Which contextual groups the available ``Flows`` fields allow; the others with the reason."""
    built, skipped = [], {}
    for name, (needs, _, _) in GROUPS.items():
        missing = [FIELD_COLUMNS[n] for n in ("rel_ms", *needs) if n not in available]
        if missing:
            skipped[name] = "needs " + ", ".join(missing) + " (null in every row or absent)"
        else:
            built.append(name)
    return built, skipped


def _grouping(flows: Flows, by: str, span: int) -> Grouped:
    if by == "pair":
        assert flows.src is not None and flows.dst is not None
        return Grouped(_pair_codes(flows.src, flows.dst), flows.rel_ms, span)
    codes = flows.src if by == "src" else flows.dst
    assert codes is not None
    return Grouped(codes, flows.rel_ms, span)


def context_features(flows: Flows, groups: list[str]) -> dict[str, np.ndarray]:
    """Build the named contextual groups; values are float32 in the rows' (time) order.

    One grouping (by source, destination, pair) is held in memory at a time.
    """
    span = flows.span
    if span * (len(flows.rel_ms) + 1) >= 2**62:
        raise OverflowError(f"time range of {span} ms is too long for the window keys; split the input by time")
    built: dict[str, dict[str, np.ndarray]] = {}
    for by in ("src", "dst", "pair"):
        mine = [name for name in groups if GROUPS[name][1] == by]
        if not mine:
            continue
        grouped = _grouping(flows, by, span)
        for name in mine:
            built[name] = {
                feature: values.astype(np.float32) for feature, values in GROUPS[name][2](flows, grouped).items()
            }
        del grouped
    return {feature: values for name in groups for feature, values in built[name].items()}
