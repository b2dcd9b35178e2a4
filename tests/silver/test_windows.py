"""Time-window features: exact counts over (t - w, t], distinct values, periodicity, causality."""

from __future__ import annotations

import numpy as np
import pytest

from stages.silver.windows import Flows, Grouped, context_features, context_groups

W = 60_000  # one minute in ms


def _grouped(times_s: list[float], groups: list[int]) -> Grouped:
    t = (np.asarray(times_s) * 1000).astype(np.int64)
    return Grouped(np.asarray(groups, dtype=np.int64), t, int(t.max()) + 10 * W)


@pytest.mark.parametrize(
    ("times", "groups", "counts"),
    [
        ([0, 30, 59, 61, 200], [0] * 5, [1, 2, 3, 3, 1]),
        ([0, 60], [0, 0], [1, 1]),  # a flow exactly w ago is outside (t - w, t]
        ([0, 59.999], [0, 0], [1, 2]),
        ([0, 0, 0], [0, 0, 0], [3, 3, 3]),  # simultaneous flows see each other
        ([0, 10, 20, 30], [0, 1, 0, 1], [1, 1, 2, 2]),  # groups never mix
        ([0, 10, 20, 30], [1, 0, 1, 0], [1, 1, 2, 2]),
    ],
)
def test_window_counts(times: list[float], groups: list[int], counts: list[int]) -> None:
    g = _grouped(times, groups)
    assert g.unsort(g.count(W)).tolist() == counts


@pytest.mark.parametrize(
    ("times", "values", "distinct"),
    [
        ([0, 10, 20, 100], [7, 8, 7, 9], [1, 2, 2, 1]),
        ([0, 10, 20, 30], [7, 7, 7, 7], [1, 1, 1, 1]),
        ([0, 0, 0], [5, 5, 6], [2, 2, 2]),
        ([0, 50, 70], [1, 2, 1], [1, 2, 2]),  # 1 at t=0 left the window, but 1 again at t=70
        ([0, 50, 110], [1, 2, 3], [1, 2, 1]),  # 50 is exactly w before 110: out
    ],
)
def test_window_distinct(times: list[float], values: list[int], distinct: list[int]) -> None:
    g = _grouped(times, [0] * len(times))
    assert g.unsort(g.distinct(np.asarray(values), W)).tolist() == distinct


@pytest.mark.parametrize("w", [1, 5_000, W, 10 * W])
def test_matches_brute_force(w: int) -> None:
    rng = np.random.default_rng(5)
    n = 600
    t = np.sort(rng.integers(0, 400_000, n))  # many ties at 1 ms resolution are unlikely, add some
    t[::7] = t[::7] // 1000 * 1000
    t = np.sort(t)
    grp, val = rng.integers(0, 4, n), rng.integers(0, 12, n)
    x = rng.exponential(100.0, n)
    g = Grouped(grp, t, int(t.max()) + w + 1)
    counts, distinct, total = g.unsort(g.count(w)), g.unsort(g.distinct(val, w)), g.unsort(g.total(x, w))
    for i in range(n):
        m = (grp == grp[i]) & (t > t[i] - w) & (t <= t[i])
        assert counts[i] == m.sum()
        assert distinct[i] == len(set(val[m].tolist()))
        assert total[i] == pytest.approx(x[m].sum())


def _flows(times_s: np.ndarray, src: np.ndarray, dst: np.ndarray) -> Flows:
    t = (np.asarray(times_s) * 1000).astype(np.int64)
    return Flows(rel_ms=t - t[0], src=src.astype(np.int64), dst=dst.astype(np.int64))


def test_periodicity_separates_beacons_from_random_arrivals() -> None:
    rng = np.random.default_rng(1)
    beacon = np.arange(40) * 60.0 + rng.uniform(-1, 1, 40)  # every 60 s, 1 s jitter
    random = np.cumsum(rng.exponential(60.0, 40))
    times = np.concatenate([beacon, random])
    order = np.argsort(times, kind="stable")
    pair = np.concatenate([np.zeros(40), np.ones(40)])[order]
    out = context_features(_flows(times[order], pair, pair), ["pair_periodicity"])
    jitter, regularity = out["pair_gap_jitter_1h"], out["pair_regularity_1h"]
    is_beacon = pair == 0
    assert jitter[is_beacon][-1] < 0.1
    assert 0.5 < jitter[~is_beacon][-1] < 1.5
    assert regularity[is_beacon][-1] > 4 > regularity[~is_beacon][-1]


def test_periodicity_is_neutral_with_few_gaps() -> None:
    out = context_features(_flows(np.array([0.0, 60.0, 120.0]), np.zeros(3), np.zeros(3)), ["pair_periodicity"])
    assert out["pair_gap_jitter_1h"].tolist() == [1.0, 1.0, 1.0]
    assert out["pair_regularity_1h"].tolist() == [0.0, 0.0, 0.0]


def test_fan_out_and_fan_in_features() -> None:
    # one scanner (src 0) hits 10 destinations in 10 s; 10 sources hit destination 99 once each
    times = np.arange(20, dtype=float)
    src = np.concatenate([np.zeros(10), np.arange(1, 11)])
    dst = np.concatenate([np.arange(10), np.full(10, 99)])
    out = context_features(_flows(times, src, dst), ["src_distinct_dst", "dst_fan_in", "src_conns"])
    assert np.expm1(out["src_distinct_dst_1m"][:10]).round().tolist() == list(range(1, 11))
    assert np.expm1(out["dst_distinct_src_1m"][10:]).round().tolist() == list(range(1, 11))
    assert np.expm1(out["src_conns_10m"][10:]).round().tolist() == [1.0] * 10
    assert all(v.dtype == np.float32 for v in out.values())


@pytest.mark.parametrize(
    ("available", "skipped_group", "reason"),
    [
        ({"rel_ms", "src"}, "src_distinct_dst", "dst_ip"),
        ({"rel_ms", "src", "dst"}, "src_failed_share", "conn_state"),
        ({"rel_ms", "dst", "failed"}, "src_conns", "src_ip"),
        ({"src", "dst", "port", "failed"}, "src_conns", "ts"),
        ({"rel_ms", "src", "dst"}, "pair_bytes_asym", "src_bytes, dst_bytes"),
    ],
)
def test_groups_need_their_columns(available: set[str], skipped_group: str, reason: str) -> None:
    built, skipped = context_groups(available)
    assert skipped_group not in built
    assert reason in skipped[skipped_group]
