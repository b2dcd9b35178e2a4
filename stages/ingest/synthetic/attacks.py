"""Attack scenarios of the synthetic generator: planning episodes and building their flows.

Every scenario reuses real ports, services, states and byte ranges that benign traffic
also has, so no single field separates it; it stands out only in context (fan-out of
one source, failure share, regular timing, volume asymmetry). Each scenario runs as
several *episodes* whose start times are stratified over the whole period, so a
time-based train/holdout split sees every scenario on both sides when rows allow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .traffic import (
    HTTP,
    REJ,
    RSTO,
    RSTR,
    S0,
    S1,
    SERVICE_PORT,
    SF,
    SSH,
    SSL,
    TCP,
    Frame,
    Hosts,
    empty,
    ephemeral_ports,
    finish,
    public_ips,
)

SCENARIOS = (
    "horizontal_scan",
    "vertical_scan",
    "ssh_bruteforce",
    "http_bruteforce",
    "syn_flood",
    "c2_beacon",
    "exfiltration",
)
_WEIGHTS = np.array([0.20, 0.12, 0.15, 0.12, 0.25, 0.10, 0.06])
_MIN_ROWS = (20, 20, 10, 10, 50, 12, 4)  # below this an episode is not worth splitting
_MAX_ROWS = (20000, 20000, 5000, 5000, 50000, 720, 200)  # above this, more episodes
_SCAN_PORTS = np.array([22, 80, 443, 445, 3389])
_NIGHT = (21, 5)  # exfiltration starts between 21:00 and 05:00


@dataclass(frozen=True)
class Episode:
    """One run of a scenario: ``rows`` flows starting at ``start`` s, ``interval`` s apart on average."""

    scenario: int
    index: int  # unique in the run; seeds the episode's own random stream
    rows: int
    start: float
    interval: float


def split_rows(total: int) -> np.ndarray:
    """Attack rows per scenario by weight (largest remainder, sums to ``total``)."""
    raw = _WEIGHTS / _WEIGHTS.sum() * total
    out = np.floor(raw).astype(np.int64)
    out[np.argsort(raw - out)[::-1][: total - out.sum()]] += 1
    return out


def _interval(rng: np.random.Generator, scenario: int) -> float:
    """Mean seconds between consecutive flows of an episode."""
    name = SCENARIOS[scenario]
    if name == "horizontal_scan":
        return 1 / rng.uniform(20, 300)
    if name == "vertical_scan":
        return 1 / rng.uniform(50, 1000)
    if name == "ssh_bruteforce":
        return rng.uniform(0.5, 4)
    if name == "http_bruteforce":
        return rng.uniform(0.1, 1.5)
    if name == "syn_flood":
        return 1 / rng.uniform(300, 3000)
    if name == "c2_beacon":
        return float(rng.choice([30, 60, 120, 300]))
    return rng.uniform(20, 120)


def plan(rng: np.random.Generator, attack_rows: int, period: float, start_epoch: float) -> list[Episode]:
    """Episodes of all scenarios; starts stratified over ``period`` seconds (exfiltration at night)."""
    episodes: list[Episode] = []
    for sc, rows in enumerate(split_rows(attack_rows)):
        if rows == 0:
            continue
        k = max(min(int(rows // _MIN_ROWS[sc]), 6), int(-(-rows // _MAX_ROWS[sc])), 1)
        sizes = np.full(k, rows // k)
        sizes[: rows % k] += 1
        for size in sizes:
            iv = min(_interval(rng, sc), 0.9 * period / k / size)
            episodes.append(Episode(sc, len(episodes), int(size), 0.0, iv))
        mine = episodes[-k:]
        dur = max(e.rows * e.interval for e in mine)
        starts = _stratified_starts(rng, k, period, dur, start_epoch, night=SCENARIOS[sc] == "exfiltration")
        episodes[-k:] = [Episode(e.scenario, e.index, e.rows, s, e.interval) for e, s in zip(mine, starts, strict=True)]
    return episodes


def _stratified_starts(
    rng: np.random.Generator, k: int, period: float, dur: float, start_epoch: float, night: bool
) -> np.ndarray:
    """One start per k consecutive groups of allowed minutes, so episodes spread over time."""
    grid = np.arange(0.0, max(period - dur, 0.0) + 1e-9, 60.0)
    if night:
        hour = ((start_epoch + grid) % 86400) / 3600
        at_night = grid[(hour >= _NIGHT[0]) | (hour < _NIGHT[1])]
        grid = at_night if len(at_night) >= k else grid
    groups = np.array_split(grid, k)
    jitter = rng.uniform(0, 60, k)
    starts = [(rng.choice(g) if len(g) else grid[-1]) for g in groups]
    return np.minimum(np.array(starts) + jitter, max(period - dur, 0.0))


def episode_times(ep: Episode, seed: int, period: float) -> np.ndarray:
    """Flow start times (s) of an episode, from its own random stream; sorted, inside the period."""
    rng = np.random.default_rng([seed, 1, ep.index])
    name, n, iv = SCENARIOS[ep.scenario], ep.rows, ep.interval
    if name == "c2_beacon":
        gaps = iv * (1 + rng.uniform(0.05, 0.2) * rng.uniform(-1, 1, n))  # period with jitter
    elif name in ("ssh_bruteforce", "http_bruteforce"):
        gaps = iv * rng.lognormal(0, 0.35, n)  # a tool's tempo: regular-ish
    elif name == "exfiltration":
        gaps = iv * rng.uniform(0.5, 1.5, n)
    else:
        gaps = rng.exponential(iv, n)  # scans, floods: as fast as packets go out
    ts = ep.start + np.cumsum(gaps) - gaps[0]
    return np.clip(ts, 0.0, np.nextafter(period, 0))


def flows(ep: Episode, seed: int, period: float, hosts: Hosts) -> Frame:
    """All flows of one episode (label 1, attack code = scenario index); deterministic."""
    rng = np.random.default_rng([seed, 2, ep.index])
    ts = episode_times(ep, seed, period)
    f = empty(len(ts))
    f["ts"] = ts
    f["sport"] = ephemeral_ports(rng, len(ts))
    f["proto"][:] = TCP
    _BUILDERS[SCENARIOS[ep.scenario]](rng, hosts, f)
    f["label"][:] = 1
    f["attack"][:] = ep.scenario
    return finish(rng, f)


def _choose_states(rng: np.random.Generator, n: int, states: tuple[int, ...], p: tuple[float, ...]) -> np.ndarray:
    return rng.choice(np.array(states, np.int8), n, p=np.array(p) / sum(p))


def _near(rng: np.random.Generator, mean: float, rel: float, n: int) -> np.ndarray:
    """Similar sizes: normal around ``mean`` with relative spread ``rel``, at least 1."""
    return np.maximum(1, np.rint(rng.normal(mean, mean * rel, n))).astype(np.int64)


def _horizontal_scan(rng: np.random.Generator, hosts: Hosts, f: Frame) -> None:
    """One source (an infected internal host, or an external scanner) → many internal
    addresses on one common port (22/80/443/445/3389). Mostly S0 (filtered or no host)
    and REJ (closed), a few answered (RSTR/SF) with tiny payloads; service unset."""
    n = len(f["ts"])
    f["src"][:] = hosts.pick_clients(rng, 1)[0] if rng.random() < 0.6 else public_ips(rng, 1)[0]
    net = (10 << 24) | (int(rng.integers(0, 3)) << 16)
    f["dst"][:] = net | rng.permutation(65536)[np.arange(n) % 65536]
    f["dport"][:] = rng.choice(_SCAN_PORTS)
    f["state"] = _choose_states(rng, n, (S0, REJ, RSTR, SF), (0.6, 0.35, 0.03, 0.02))
    f["sbytes"][:] = rng.integers(0, 40, n)
    f["dbytes"][:] = rng.integers(0, 200, n)
    f["duration"] = rng.exponential(0.05, n)


def _vertical_scan(rng: np.random.Generator, hosts: Hosts, f: Frame) -> None:
    """One source → one internal server, many destination ports (low ports first, then
    random high ones). Closed ports REJ, filtered S0; the open real services (22/80/443/445)
    answer with SF/RSTO and a banner's worth of bytes."""
    n = len(f["ts"])
    f["src"][:] = public_ips(rng, 1)[0] if rng.random() < 0.6 else hosts.pick_clients(rng, 1)[0]
    f["dst"][:] = rng.choice(np.concatenate([hosts.servers, hosts.web]))
    ports = np.concatenate([rng.permutation(np.arange(1, 1025)), rng.permutation(np.arange(1025, 65536))])
    f["dport"] = ports[np.arange(n) % len(ports)].astype(np.int32)
    f["state"] = _choose_states(rng, n, (REJ, S0), (0.8, 0.2))
    open_ = np.isin(f["dport"], [22, 80, 443, 445])
    f["state"][open_] = _choose_states(rng, int(open_.sum()), (SF, RSTO), (0.5, 0.5))
    f["sbytes"] = np.where(open_, rng.integers(0, 60, n), 0)
    f["dbytes"] = np.where(open_, rng.integers(20, 400, n), 0)
    f["duration"] = rng.exponential(0.02, n)


def _ssh_bruteforce(rng: np.random.Generator, hosts: Hosts, f: Frame) -> None:
    """One source → one ssh server:22, a login attempt every few seconds: short sessions of
    similar size (a key exchange plus a failed password), mostly SF, RSTO when the server
    drops the client after too many failures."""
    n = len(f["ts"])
    f["src"][:] = public_ips(rng, 1)[0] if rng.random() < 0.8 else hosts.pick_clients(rng, 1)[0]
    f["dst"][:] = rng.choice(hosts.servers)
    f["dport"][:], f["service"][:] = 22, SSH
    f["state"] = _choose_states(rng, n, (SF, RSTO, S0), (0.7, 0.25, 0.05))
    f["sbytes"] = _near(rng, rng.uniform(1200, 2600), 0.05, n)
    f["dbytes"] = _near(rng, rng.uniform(1800, 3200), 0.05, n)
    f["duration"] = np.abs(rng.normal(rng.uniform(1.5, 6), 0.4, n))


def _http_bruteforce(rng: np.random.Generator, hosts: Hosts, f: Frame) -> None:
    """One source → one DMZ web server:80, repeated short POST-sized requests (form login)
    answered by the same small error page; SF, a few RSTO."""
    n = len(f["ts"])
    f["src"][:] = public_ips(rng, 1)[0]
    f["dst"][:] = rng.choice(hosts.web)
    f["dport"][:], f["service"][:] = 80, HTTP
    f["state"] = _choose_states(rng, n, (SF, RSTO), (0.95, 0.05))
    f["sbytes"] = _near(rng, rng.uniform(500, 900), 0.03, n)
    f["dbytes"] = _near(rng, rng.uniform(400, 1500), 0.03, n)
    f["duration"] = rng.lognormal(np.log(rng.uniform(0.05, 0.3)), 0.3, n)


def _syn_flood(rng: np.random.Generator, hosts: Hosts, f: Frame) -> None:
    """Many (spoofed) external sources → one DMZ web server on 80 or 443: bare SYNs, S0,
    no payload, a burst of thousands per second; each source appears only a few times."""
    n = len(f["ts"])
    srcs = public_ips(rng, int(np.clip(n // 3, 10, 50000)))
    f["src"] = rng.choice(srcs, n)
    f["dst"][:] = rng.choice(hosts.web)
    f["dport"][:] = rng.choice([80, 443])
    f["state"][:] = S0


def _c2_beacon(rng: np.random.Generator, hosts: Hosts, f: Frame) -> None:
    """One infected internal host → one external server on 443 (ssl) or 80 (http) every
    N s (N in 30..300, jitter 5-20%): small check-ins of near-constant size; now and then
    a larger response (a tasking)."""
    n = len(f["ts"])
    f["src"][:] = hosts.pick_clients(rng, 1)[0]
    f["dst"][:] = public_ips(rng, 1)[0]
    svc = SSL if rng.random() < 0.75 else HTTP
    f["dport"][:], f["service"][:] = SERVICE_PORT[svc], svc
    f["state"] = _choose_states(rng, n, (SF, RSTO), (0.97, 0.03))
    f["sbytes"] = _near(rng, rng.uniform(150, 600), 0.05, n)
    f["dbytes"] = np.where(
        rng.random(n) < 0.03, rng.integers(5000, 50000, n), _near(rng, rng.uniform(100, 1200), 0.1, n)
    )
    f["duration"] = np.abs(rng.normal(rng.uniform(0.05, 1.0), 0.05, n))


def _exfiltration(rng: np.random.Generator, hosts: Hosts, f: Frame) -> None:
    """One internal host → one new external server at night: long uploads (src_bytes in the
    tens of MB, dst_bytes only acknowledgements), ssl/443 mostly, sometimes ssh or http."""
    n = len(f["ts"])
    f["src"][:] = hosts.pick_clients(rng, 1)[0]
    f["dst"][:] = public_ips(rng, 1)[0]
    svc = rng.choice([SSL, SSH, HTTP], p=[0.7, 0.15, 0.15])
    f["dport"][:], f["service"][:] = SERVICE_PORT[int(svc)], svc
    f["state"] = _choose_states(rng, n, (SF, S1), (0.95, 0.05))
    f["sbytes"] = np.rint(rng.lognormal(np.log(rng.uniform(5e6, 5e7)), 0.6, n)).astype(np.int64)
    f["dbytes"] = np.rint(f["sbytes"] / rng.uniform(300, 3000, n)).astype(np.int64)
    f["duration"] = f["sbytes"] / rng.uniform(0.5e6, 5e6, n)


_BUILDERS = {
    "horizontal_scan": _horizontal_scan,
    "vertical_scan": _vertical_scan,
    "ssh_bruteforce": _ssh_bruteforce,
    "http_bruteforce": _http_bruteforce,
    "syn_flood": _syn_flood,
    "c2_beacon": _c2_beacon,
    "exfiltration": _exfiltration,
}
