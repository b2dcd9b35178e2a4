"""Per-flow features: log-scaled sizes, ratios, and encodings of proto/service/state/history/port.

Each group of features declares the canonical columns it needs. A group whose columns
are null in every row (the format lacks them: UNSW-NB15 has no history, CIC no
ip_bytes) is skipped with a reason for the manifest, so the feature list depends on the
input *format*, never on the values, and is the same for every chunk of one input.
Nulls in an otherwise present column become 0 / "none" (Zeek writes ``-`` for the
duration and bytes of a connection that never got an answer).

Vocabularies are fixed, so the same format always yields the same feature list and
schema hash. Categorical columns are encoded on their distinct values and gathered
back, which keeps 1M rows well under a second.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["FAILED_STATES", "FLOW_GROUPS", "flow_groups", "flow_features", "is_failed"]

PROTOS = ("tcp", "udp", "icmp")
SERVICES = ("dns", "http", "ssl", "ssh", "ftp", "smtp", "ntp", "dhcp", "smb", "rdp")
"""Services with their own indicator; anything else is ``service_other``, none is ``service_none``."""
FAILED_STATES = frozenset({"S0", "REJ", "RSTO", "RSTOS0", "RSTR", "SH", "SHR", "OTH"})
"""Zeek conn_state values of attempts that did not become a normal connection."""
STATE_GROUPS: dict[str, frozenset[str]] = {
    "cs_complete": frozenset({"SF"}),
    "cs_open": frozenset({"S1", "S2", "S3"}),
    "cs_no_reply": frozenset({"S0"}),
    "cs_rejected": frozenset({"REJ"}),
    "cs_reset": frozenset({"RSTO", "RSTOS0", "RSTR", "RSTRH"}),
    "cs_half": frozenset({"SH", "SHR"}),
}
"""conn_state groups; anything else (OTH, non-Zeek states) is ``cs_other``."""
COMMON_PORTS = frozenset(
    {20, 21, 22, 23, 25, 53, 67, 68, 80, 110, 123, 137, 138, 139, 143, 161, 389, 443, 445, 465, 587, 636}
    | {853, 993, 995, 1433, 1883, 3306, 3389, 5353, 5432, 5900, 8080, 8443, 8883}
)
"""Destination ports of common services; a connection elsewhere is a little more unusual."""

Builder = Callable[[pa.Table], dict[str, np.ndarray]]


def _num(tbl: pa.Table, col: str) -> np.ndarray:
    """A numeric column as float64 with nulls as 0 and negatives clipped to 0."""
    values = pc.fill_null(tbl.column(col), 0).to_numpy().astype(np.float64)
    return np.maximum(values, 0.0)


def _encode(tbl: pa.Table, col: str, fn: Callable[[str | None], tuple[float, ...]], names: list[str]) -> dict:
    """Flags from a string column, computed once per distinct value and gathered back."""
    enc = pc.dictionary_encode(tbl.column(col)).combine_chunks()
    table = np.array([fn(v) for v in enc.dictionary.to_pylist()] + [fn(None)], dtype=np.float32)
    table = table.reshape(-1, len(names))
    idx = pc.fill_null(enc.indices, len(enc.dictionary)).to_numpy()
    return {name: table[idx, i] for i, name in enumerate(names)}


def _sizes(tbl: pa.Table) -> dict[str, np.ndarray]:
    sb, db = _num(tbl, "src_bytes"), _num(tbl, "dst_bytes")
    return {"log_src_bytes": np.log1p(sb), "log_dst_bytes": np.log1p(db), "bytes_asym": (sb - db) / (sb + db + 1.0)}


def _packets(tbl: pa.Table) -> dict[str, np.ndarray]:
    sp, dp = _num(tbl, "src_pkts"), _num(tbl, "dst_pkts")
    return {"log_src_pkts": np.log1p(sp), "log_dst_pkts": np.log1p(dp), "pkts_asym": (sp - dp) / (sp + dp + 1.0)}


def _bytes_per_packet(tbl: pa.Table) -> dict[str, np.ndarray]:
    sb, db = _num(tbl, "src_bytes"), _num(tbl, "dst_bytes")
    sp, dp = _num(tbl, "src_pkts"), _num(tbl, "dst_pkts")
    return {
        "log_src_bytes_per_pkt": np.log1p(sb / np.maximum(sp, 1.0)),
        "log_dst_bytes_per_pkt": np.log1p(db / np.maximum(dp, 1.0)),
    }


def _ip_bytes(tbl: pa.Table) -> dict[str, np.ndarray]:
    sib, dib = _num(tbl, "src_ip_bytes"), _num(tbl, "dst_ip_bytes")
    return {"log_src_ip_bytes": np.log1p(sib), "log_dst_ip_bytes": np.log1p(dib)}


def _payload_share(tbl: pa.Table) -> dict[str, np.ndarray]:
    """Payload / IP bytes: near 0 for bare handshakes and probes, near 1 for bulk transfer."""
    payload = _num(tbl, "src_bytes") + _num(tbl, "dst_bytes")
    ip = _num(tbl, "src_ip_bytes") + _num(tbl, "dst_ip_bytes")
    return {"payload_share": np.clip(payload / np.maximum(ip, 1.0), 0.0, 1.0)}


def _duration(tbl: pa.Table) -> dict[str, np.ndarray]:
    return {"log_duration": np.log1p(_num(tbl, "duration"))}


def _rate(tbl: pa.Table) -> dict[str, np.ndarray]:
    """Bytes per second, with a 10 ms floor on duration so single-packet flows stay finite."""
    total = _num(tbl, "src_bytes") + _num(tbl, "dst_bytes")
    return {"log_bytes_per_s": np.log1p(total / np.maximum(_num(tbl, "duration"), 0.01))}


def _proto(tbl: pa.Table) -> dict[str, np.ndarray]:
    names = [f"proto_{p}" for p in PROTOS] + ["proto_other"]

    def fn(v: str | None) -> tuple[float, ...]:
        p = (v or "").lower()
        return (*(float(p == k) for k in PROTOS), float(p not in PROTOS))

    return _encode(tbl, "proto", fn, names)


def _service(tbl: pa.Table) -> dict[str, np.ndarray]:
    names = [f"service_{s}" for s in SERVICES] + ["service_other", "service_none"]

    def fn(v: str | None) -> tuple[float, ...]:
        first = (v or "").lower().split(",")[0].strip()  # Zeek may list several: "ssl,http"
        none = first in {"", "-"}
        return (*(float(first == k) for k in SERVICES), float(not none and first not in SERVICES), float(none))

    return _encode(tbl, "service", fn, names)


def is_failed(state: str | None) -> bool:
    """A conn_state in the failed group (the attempt never became a normal connection)."""
    return (state or "").upper() in FAILED_STATES


def _conn_state(tbl: pa.Table) -> dict[str, np.ndarray]:
    names = [*STATE_GROUPS, "cs_other", "cs_failed"]

    def fn(v: str | None) -> tuple[float, ...]:
        s = (v or "").upper()
        flags = [float(s in states) for states in STATE_GROUPS.values()]
        return (*flags, float(not any(flags)), float(is_failed(s)))

    return _encode(tbl, "conn_state", fn, names)


HISTORY_FLAGS: dict[str, Callable[[str], bool]] = {
    "hist_syn_no_synack": lambda h: "S" in h and "h" not in h,
    "hist_orig_reset": lambda h: "R" in h,
    "hist_resp_reset": lambda h: "r" in h,
    "hist_orig_data": lambda h: "D" in h,
    "hist_resp_data": lambda h: "d" in h,
    "hist_fin": lambda h: "F" in h or "f" in h,
    "hist_retransmit": lambda h: "T" in h or "t" in h,
}
"""Zeek history letters: upper case = originator, lower case = responder."""


def _history(tbl: pa.Table) -> dict[str, np.ndarray]:
    def fn(v: str | None) -> tuple[float, ...]:
        return tuple(float(test(v or "")) for test in HISTORY_FLAGS.values())

    return _encode(tbl, "history", fn, list(HISTORY_FLAGS))


def _port_class(tbl: pa.Table) -> dict[str, np.ndarray]:
    port = pc.fill_null(tbl.column("dst_port"), -1).to_numpy().astype(np.int64)
    known = port >= 0
    return {
        "port_well_known": (known & (port < 1024)).astype(np.float32),
        "port_registered": ((port >= 1024) & (port < 49152)).astype(np.float32),
        "port_ephemeral": (port >= 49152).astype(np.float32),
        "port_common_service": np.isin(port, list(COMMON_PORTS)).astype(np.float32),
    }


FLOW_GROUPS: dict[str, tuple[tuple[str, ...], Builder]] = {
    "duration": (("duration",), _duration),
    "bytes": (("src_bytes", "dst_bytes"), _sizes),
    "packets": (("src_pkts", "dst_pkts"), _packets),
    "bytes_per_packet": (("src_bytes", "dst_bytes", "src_pkts", "dst_pkts"), _bytes_per_packet),
    "ip_bytes": (("src_ip_bytes", "dst_ip_bytes"), _ip_bytes),
    "payload_share": (("src_bytes", "dst_bytes", "src_ip_bytes", "dst_ip_bytes"), _payload_share),
    "rate": (("duration", "src_bytes", "dst_bytes"), _rate),
    "proto": (("proto",), _proto),
    "service": (("service",), _service),
    "conn_state": (("conn_state",), _conn_state),
    "history": (("history",), _history),
    "port_class": (("dst_port",), _port_class),
}
"""group → (canonical columns it needs, builder). The order here is the feature order."""


def flow_groups(available: set[str]) -> tuple[list[str], dict[str, str]]:
    """The per-flow groups the available columns allow; the others with the reason."""
    built, skipped = [], {}
    for name, (needs, _) in FLOW_GROUPS.items():
        missing = [c for c in needs if c not in available]
        if missing:
            skipped[name] = "needs " + ", ".join(missing) + " (null in every row or absent)"
        else:
            built.append(name)
    return built, skipped


def flow_features(tbl: pa.Table, groups: list[str]) -> dict[str, np.ndarray]:
    """Per-flow features of ``tbl`` (a canonical table or a chunk of one) as float32 arrays."""
    out: dict[str, np.ndarray] = {}
    for name in groups:
        for feature, values in FLOW_GROUPS[name][1](tbl).items():
            out[feature] = np.asarray(values, dtype=np.float32)
    return out
