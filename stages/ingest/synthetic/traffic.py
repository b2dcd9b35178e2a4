"""Benign Zeek-conn-like traffic for the synthetic generator.

Flows are built as a dict of numpy columns (a "frame") so a whole batch is generated
with a few vectorised calls. Addresses are uint32, categorical fields are small integer
codes into the vocabularies below, and missing values are NaN (floats) or -1 (codes,
byte counts); ``generator.to_batch`` turns a frame into an Arrow RecordBatch.

Byte counts and durations are lognormal per service and correlated with each other
through one shared normal draw (a long flow tends to carry more bytes). Packets and
IP-level bytes are derived from payload bytes, so ``*_ip_bytes >= *_bytes + headers``
always holds, and the history string always agrees with ``conn_state``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Frame = dict[str, np.ndarray]

PROTOS = ("tcp", "udp", "icmp")
TCP, UDP, ICMP = 0, 1, 2
SERVICES = ("dns", "http", "ssl", "ssh", "smtp", "ntp", "smb", "rdp")
DNS, HTTP, SSL, SSH, SMTP, NTP, SMB, RDP = range(8)
STATES = ("SF", "S0", "REJ", "RSTO", "RSTR", "SH", "S1", "OTH")
SF, S0, REJ, RSTO, RSTR, SH, S1, OTH = range(8)
SERVICE_PORT = {DNS: 53, HTTP: 80, SSL: 443, SSH: 22, SMTP: 25, NTP: 123, SMB: 445, RDP: 3389}

# History strings Zeek writes for each (proto, conn_state); capital = originator.
_HISTORY_OPTIONS: dict[tuple[int, int], tuple[str, ...]] = {
    (TCP, SF): ("ShADadFf", "ShADadfF", "ShADaFf", "ShAdDaFf", "ShADdaFf"),
    (TCP, S0): ("S",),
    (TCP, REJ): ("Sr",),
    (TCP, RSTO): ("ShADadR", "ShADaR", "ShAdDaR"),
    (TCP, RSTR): ("ShADadr", "ShADdar", "ShAdr"),
    (TCP, SH): ("SF",),
    (TCP, S1): ("ShAD", "ShADad"),
    (TCP, OTH): ("Dd", "DdA", "D"),
    (UDP, SF): ("Dd",),
    (UDP, S0): ("D",),
}
HISTORIES = tuple(sorted({h for opts in _HISTORY_OPTIONS.values() for h in opts}))
_HIST_CODES = {key: np.array([HISTORIES.index(h) for h in opts]) for key, opts in _HISTORY_OPTIONS.items()}

# Packets of the TCP handshake/teardown per state: (originator, responder).
_TCP_HANDSHAKE = {SF: (3, 2), S0: (1, 0), REJ: (1, 1), RSTO: (3, 1), RSTR: (2, 2), SH: (2, 0), S1: (2, 1), OTH: (0, 0)}
_TCP_STATE_P = np.array([0.86, 0.035, 0.025, 0.025, 0.02, 0.01, 0.015, 0.01])

# service, proto, port (0 = unregistered high port), weight, where the server is,
# log-median/sigma of orig bytes, resp bytes, duration (s).
_PROFILES = (
    (DNS, UDP, 53, 0.33, "dns", (3.7, 0.3), (4.8, 0.5), (-3.9, 1.0)),
    (SSL, TCP, 443, 0.30, "web", (7.3, 1.3), (8.7, 2.0), (0.0, 1.8)),
    (HTTP, TCP, 80, 0.10, "web", (6.2, 1.0), (8.3, 2.0), (-1.2, 1.6)),
    (SSL, TCP, 443, 0.004, "web", (15.5, 1.3), (9.5, 1.0), (3.5, 1.2)),  # uploads: cloud sync, backups
    (SSL, TCP, 443, 0.006, "web", (8.0, 0.8), (16.0, 1.4), (3.0, 1.2)),  # downloads: updates, video
    (NTP, UDP, 123, 0.03, "ntp", (3.87, 0.0), (3.87, 0.0), (-3.5, 0.8)),
    (SSH, TCP, 22, 0.02, "servers", (8.0, 1.5), (8.3, 1.7), (2.3, 2.0)),
    (SMTP, TCP, 25, 0.015, "mail", (9.9, 1.5), (7.3, 0.6), (0.7, 1.0)),
    (SMB, TCP, 445, 0.045, "files", (7.6, 1.8), (9.0, 2.2), (0.7, 2.0)),
    (RDP, TCP, 3389, 0.01, "servers", (10.8, 1.5), (13.1, 1.5), (5.7, 1.3)),
    (-1, TCP, 0, 0.09, "any", (5.7, 2.0), (6.7, 2.2), (0.0, 2.0)),
    (-1, UDP, 0, 0.05, "any", (4.6, 1.5), (5.0, 1.5), (-2.3, 2.0)),
    (-1, ICMP, 0, 0.01, "any", (4.0, 0.0), (4.0, 0.0), (-3.0, 1.0)),
)
_PROFILE_P = np.array([p[3] for p in _PROFILES]) / sum(p[3] for p in _PROFILES)
_APP_PORTS = np.array([8080, 8443, 5222, 1194, 3478, 9000, 5228, 8000, 1883, 5060, 6881, 27017])
_INBOUND = ((HTTP, 80, 0.35), (SSL, 443, 0.5), (SMTP, 25, 0.1), (SSH, 22, 0.05))
# First octets of publicly routed /8s that external peers are drawn from.
_PUBLIC_FIRST_OCTETS = np.array([13, 18, 23, 31, 34, 35, 37, 45, 52, 54, 64, 66, 69, 74, 77, 81, 91, 93, 104])


def ip(a: int, b: int, c: int, d: int) -> int:
    """Dotted quad → uint32 value."""
    return (a << 24) | (b << 16) | (c << 8) | d


def public_ips(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random addresses in publicly routed /8s (never RFC 1918), uint32."""
    first = rng.choice(_PUBLIC_FIRST_OCTETS, n).astype(np.uint32)
    rest = rng.integers(0x000101, 0xFFFFFE, n, dtype=np.uint32)
    return (first << np.uint32(24)) | rest


def ephemeral_ports(rng: np.random.Generator, n: int) -> np.ndarray:
    """Client source ports: Windows range 49152-65535 (60%) or Linux 32768-60999."""
    win = rng.random(n) < 0.6
    return np.where(win, rng.integers(49152, 65536, n), rng.integers(32768, 61000, n)).astype(np.int32)


def zipf_weights(n: int, a: float = 1.1) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** a
    return w / w.sum()


@dataclass(frozen=True)
class Hosts:
    """The simulated network: internal clients and servers, external peers (uint32 addresses)."""

    clients: np.ndarray
    client_p: np.ndarray
    dns: np.ndarray
    mail: np.ndarray
    files: np.ndarray
    servers: np.ndarray
    web: np.ndarray  # DMZ web servers, reachable from outside
    sites: np.ndarray  # external servers, Zipf popularity
    site_p: np.ndarray
    resolvers: np.ndarray
    ntp: np.ndarray
    ext_clients: np.ndarray

    @classmethod
    def build(cls, rng: np.random.Generator, rows: int) -> Hosts:
        """Hosts scaled with ``rows``: about 3·sqrt(rows) internal clients (20..20000)."""
        n_clients = int(np.clip(3 * np.sqrt(rows), 20, 20000))
        i = np.arange(n_clients)
        subnet = i // 250
        clients = ((10 << 24) | ((1 + subnet // 256) << 16) | ((subnet % 256) << 8) | (10 + i % 250)).astype(np.uint32)
        activity = rng.lognormal(0.0, 1.2, n_clients)

        def block(c: int, n: int) -> np.ndarray:
            return np.array([ip(10, 0, c, 10 + k) for k in range(n)], dtype=np.uint32)

        n_sites = int(np.clip(10 * np.sqrt(rows), 200, 200000))
        sites = np.unique(public_ips(rng, n_sites))
        rng.shuffle(sites)
        return cls(
            clients=clients,
            client_p=activity / activity.sum(),
            dns=np.array([ip(10, 0, 0, 2), ip(10, 0, 0, 3)], dtype=np.uint32),
            mail=np.array([ip(10, 0, 0, 25)], dtype=np.uint32),
            files=block(1, int(np.clip(n_clients // 200, 2, 50))),
            servers=block(2, int(np.clip(n_clients // 100, 3, 200))),
            web=block(3, int(np.clip(n_clients // 500, 2, 20))),
            sites=sites,
            site_p=zipf_weights(len(sites)),
            resolvers=np.array([ip(8, 8, 8, 8), ip(1, 1, 1, 1), ip(9, 9, 9, 9)], dtype=np.uint32),
            ntp=public_ips(rng, 4),
            ext_clients=np.unique(public_ips(rng, max(100, n_sites // 2))),
        )

    def pick_clients(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.clients[rng.choice(len(self.clients), n, p=self.client_p)]

    def pick_sites(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.sites[rng.choice(len(self.sites), n, p=self.site_p)]


def _servers_for(rng: np.random.Generator, hosts: Hosts, where: str, n: int) -> np.ndarray:
    """Destination addresses for ``n`` flows of one service profile."""
    if where == "dns":
        return np.where(rng.random(n) < 0.9, rng.choice(hosts.dns, n), rng.choice(hosts.resolvers, n))
    if where == "web":
        return np.where(rng.random(n) < 0.88, hosts.pick_sites(rng, n), rng.choice(hosts.web, n))
    if where == "ntp":
        return rng.choice(hosts.ntp, n)
    if where == "servers":
        return np.where(rng.random(n) < 0.85, rng.choice(hosts.servers, n), hosts.pick_sites(rng, n))
    if where == "mail":
        return rng.choice(hosts.mail, n)
    if where == "files":
        return rng.choice(hosts.files, n)
    inside = rng.random(n) < 0.3  # peer-to-peer, internal apps, games, VoIP ...
    return np.where(inside, hosts.pick_clients(rng, n), hosts.pick_sites(rng, n))


def benign(rng: np.random.Generator, hosts: Hosts, ts: np.ndarray) -> Frame:
    """Benign flows at the given start times (seconds): ~94% outbound/internal, ~6% inbound."""
    n = len(ts)
    prof = rng.choice(len(_PROFILES), n, p=_PROFILE_P)
    f = empty(n)
    f["ts"] = ts
    f["src"] = hosts.pick_clients(rng, n)
    z, e = rng.standard_normal(n), rng.standard_normal((3, n))
    mu, sd = np.zeros((3, n)), np.zeros((3, n))
    for k, (svc, proto, port, _w, where, bo, br, du) in enumerate(_PROFILES):
        m = prof == k
        cnt = int(m.sum())
        f["service"][m], f["proto"][m] = svc, proto
        f["dst"][m] = _servers_for(rng, hosts, where, cnt)
        if port:
            f["dport"][m] = port
        else:
            f["dport"][m] = np.where(rng.random(cnt) < 0.5, rng.choice(_APP_PORTS, cnt), rng.integers(1024, 65536, cnt))
        for j, (mu_j, sd_j) in enumerate((bo, br, du)):
            mu[j, m], sd[j, m] = mu_j, sd_j
    _inbound(rng, hosts, f)
    logs = mu + sd * (0.6 * z + 0.8 * e)
    f["sbytes"] = np.rint(np.exp(logs[0])).astype(np.int64)
    f["dbytes"] = np.rint(np.exp(logs[1])).astype(np.int64)
    f["duration"] = np.exp(logs[2])
    f["sport"] = ephemeral_ports(rng, n)
    f["sport"][f["service"] == NTP] = 123
    is_icmp = f["proto"] == ICMP
    f["sport"][is_icmp], f["dport"][is_icmp] = 8, 0  # echo request type/code, as Zeek logs them
    f["state"] = np.where(f["proto"] == TCP, rng.choice(len(STATES), n, p=_TCP_STATE_P), SF).astype(np.int8)
    udp_lost = (f["proto"] == UDP) & (rng.random(n) < 0.07)
    f["state"][udp_lost] = S0
    f["state"][is_icmp] = OTH
    aborted = np.isin(f["state"], (RSTO, RSTR))
    for col in ("sbytes", "dbytes"):
        f[col][aborted] = (f[col][aborted] * rng.uniform(0.05, 1.0, int(aborted.sum()))).astype(np.int64)
    midstream = f["state"] == OTH
    f["service"][midstream & (rng.random(n) < 0.5)] = -1
    return finish(rng, f)


def _inbound(rng: np.random.Generator, hosts: Hosts, f: Frame) -> None:
    """Turn ~6% of the flows into inbound connections from the internet to the DMZ."""
    n = len(f["ts"])
    idx = np.flatnonzero(rng.random(n) < 0.06)
    if not len(idx):
        return
    kind = rng.choice(len(_INBOUND), len(idx), p=[w for _s, _p, w in _INBOUND])
    svc = np.array([s for s, _p, _w in _INBOUND])[kind]
    f["src"][idx] = rng.choice(hosts.ext_clients, len(idx))
    f["dst"][idx] = np.where(
        svc == SMTP, hosts.mail[0], np.where(svc == SSH, hosts.servers[0], rng.choice(hosts.web, len(idx)))
    )
    f["service"][idx], f["dport"][idx], f["proto"][idx] = svc, np.array([p for _s, p, _w in _INBOUND])[kind], TCP


def empty(n: int) -> Frame:
    """A frame of ``n`` flows with every column allocated (benign label, no attack type)."""
    return {
        "ts": np.zeros(n),
        "src": np.zeros(n, np.uint32),
        "sport": np.zeros(n, np.int32),
        "dst": np.zeros(n, np.uint32),
        "dport": np.zeros(n, np.int32),
        "proto": np.zeros(n, np.int8),
        "service": np.full(n, -1, np.int8),
        "state": np.zeros(n, np.int8),
        "duration": np.zeros(n),
        "sbytes": np.zeros(n, np.int64),
        "dbytes": np.zeros(n, np.int64),
        "label": np.zeros(n, np.int8),
        "attack": np.full(n, -1, np.int8),
    }


def finish(rng: np.random.Generator, f: Frame) -> Frame:
    """Derive packets, IP bytes and history from proto/state/bytes; apply failed-state rules.

    S0/REJ/SH carry no payload and no service. A single-packet S0 has no duration and
    no byte counts at all (Zeek writes ``-``); retransmitted SYNs last ~1 s or ~3 s.
    """
    n = len(f["ts"])
    st, proto = f["state"], f["proto"]
    failed = np.isin(st, (S0, REJ, SH)) & (proto == TCP)
    f["sbytes"][failed], f["dbytes"][failed], f["service"][failed] = 0, 0, -1
    f["dbytes"][(proto == UDP) & (st == S0)] = 0
    icmp = proto == ICMP
    seg_o, seg_r = rng.integers(536, 1449, n), rng.integers(536, 1449, n)
    data_o, data_r = -(-f["sbytes"] // seg_o), -(-f["dbytes"] // seg_r)
    hs = np.array([_TCP_HANDSHAKE[s] for s in range(len(STATES))])
    tcp = proto == TCP
    retrans = np.where(tcp & (st == S0), rng.choice(3, n, p=[0.7, 0.2, 0.1]), 0)
    spkts = np.where(tcp, data_o + (data_r + 1) // 2 + hs[st, 0] + retrans, np.maximum(1, data_o))
    dpkts = np.where(tcp, data_r + (data_o + 1) // 2 + hs[st, 1], data_r)
    dpkts = np.where((proto == UDP) & (st == SF), np.maximum(1, dpkts), dpkts)
    spkts = np.where(tcp & (st == OTH), np.maximum(1, spkts), spkts)
    echo = rng.integers(1, 6, n)
    spkts = np.where(icmp, echo, spkts)
    dpkts = np.where(icmp, np.where(rng.random(n) < 0.8, echo, 0), dpkts)
    f["sbytes"] = np.where(icmp, spkts * 56, f["sbytes"])
    f["dbytes"] = np.where(icmp, dpkts * 56, f["dbytes"])
    hdr = np.where(tcp, rng.choice(np.array([40, 52]), n), 28)
    f["spkts"], f["dpkts"] = spkts.astype(np.int64), dpkts.astype(np.int64)
    f["sipb"], f["dipb"] = f["sbytes"] + spkts * hdr, f["dbytes"] + dpkts * hdr
    dur = f["duration"]
    dur[tcp & (st == S0)] = np.where(retrans == 0, np.nan, np.where(retrans == 1, 1.0, 3.0) + rng.uniform(0, 0.01, n))[
        tcp & (st == S0)
    ]
    dur[tcp & (st == REJ)] = rng.uniform(1e-5, 2e-3, n)[tcp & (st == REJ)]
    dur[tcp & (st == SH)] = rng.uniform(0, 0.5, n)[tcp & (st == SH)]
    single = tcp & (st == S0) & (retrans == 0)
    f["sbytes"][single], f["dbytes"][single] = -1, -1
    hist = np.full(n, -1, np.int16)
    for (p, s), codes in _HIST_CODES.items():
        m = (proto == p) & (st == s)
        hist[m] = codes[rng.integers(0, len(codes), int(m.sum()))]
    f["history"] = hist
    return f
