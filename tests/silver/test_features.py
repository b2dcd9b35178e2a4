"""Per-flow features: encodings of single values and skipping of absent columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stages.silver.features import flow_features, flow_groups
from tests.silver.conftest import flows


@pytest.mark.parametrize(
    ("row", "feature", "expected"),
    [
        ({"history": "S"}, "hist_syn_no_synack", 1.0),
        ({"history": "ShADadFf"}, "hist_syn_no_synack", 0.0),
        ({"history": "ShADadR"}, "hist_orig_reset", 1.0),
        ({"history": "Sr"}, "hist_resp_reset", 1.0),
        ({"history": "Sr"}, "hist_orig_reset", 0.0),
        ({"history": "ShAdDaT"}, "hist_retransmit", 1.0),
        ({"history": None}, "hist_fin", 0.0),
        ({"conn_state": "REJ"}, "cs_rejected", 1.0),
        ({"conn_state": "REJ"}, "cs_failed", 1.0),
        ({"conn_state": "SF"}, "cs_failed", 0.0),
        ({"conn_state": "RSTOS0"}, "cs_reset", 1.0),
        ({"conn_state": "OTH"}, "cs_other", 1.0),
        ({"conn_state": "OTH"}, "cs_failed", 1.0),
        ({"conn_state": "FIN"}, "cs_other", 1.0),  # UNSW-NB15 states are not Zeek's
        ({"service": "ssl,http"}, "service_ssl", 1.0),
        ({"service": "irc"}, "service_other", 1.0),
        ({"service": None}, "service_none", 1.0),
        ({"proto": "UDP"}, "proto_udp", 1.0),
        ({"proto": "sctp"}, "proto_other", 1.0),
        ({"dst_port": 22}, "port_well_known", 1.0),
        ({"dst_port": 22}, "port_common_service", 1.0),
        ({"dst_port": 31337}, "port_registered", 1.0),
        ({"dst_port": 31337}, "port_common_service", 0.0),
        ({"dst_port": 50000}, "port_ephemeral", 1.0),
        ({"dst_port": None}, "port_well_known", 0.0),
        ({"src_bytes": 0, "dst_bytes": 0}, "log_src_bytes", 0.0),
        ({"src_bytes": None}, "log_src_bytes", 0.0),
        ({"src_bytes": -5}, "log_src_bytes", 0.0),
        ({"src_bytes": 1000, "dst_bytes": 0}, "bytes_asym", 1000 / 1001),
        ({"src_bytes": 0, "dst_bytes": 999}, "bytes_asym", -999 / 1000),
        ({"src_bytes": 1400, "src_pkts": 2}, "log_src_bytes_per_pkt", np.log1p(700)),
        ({"src_bytes": 0, "src_pkts": 0}, "log_src_bytes_per_pkt", 0.0),
        ({"duration": None}, "log_duration", 0.0),
        ({"duration": np.e - 1}, "log_duration", 1.0),
        ({"src_bytes": 50, "dst_bytes": 50, "src_ip_bytes": 200, "dst_ip_bytes": 200}, "payload_share", 0.25),
    ],
)
def test_single_flow_encoding(row: dict[str, Any], feature: str, expected: float) -> None:
    # a second, fully populated row keeps every column present
    full = {
        "history": "ShADadFf",
        "service": "http",
        "dst_port": 80,
        "duration": 1.0,
        "src_pkts": 3,
        "dst_pkts": 3,
        "src_ip_bytes": 300,
        "dst_ip_bytes": 400,
    }
    table = flows([row, full])
    groups, _ = flow_groups(set(table.column_names))
    values = flow_features(table, groups)
    assert values[feature].dtype == np.float32
    assert values[feature][0] == pytest.approx(expected, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize(
    ("absent", "group"),
    [
        ({"history"}, "history"),
        ({"src_ip_bytes", "dst_ip_bytes"}, "ip_bytes"),
        ({"src_ip_bytes"}, "payload_share"),
        ({"duration"}, "rate"),
        ({"src_pkts"}, "bytes_per_packet"),
        ({"dst_port"}, "port_class"),
    ],
)
def test_group_skipped_with_reason(absent: set[str], group: str) -> None:
    available = {
        "duration",
        "src_bytes",
        "dst_bytes",
        "src_pkts",
        "dst_pkts",
        "src_ip_bytes",
        "dst_ip_bytes",
        "proto",
        "service",
        "conn_state",
        "history",
        "dst_port",
    } - absent
    built, skipped = flow_groups(available)
    assert group not in built
    assert all(col in skipped[group] for col in absent if col in skipped[group])
    assert "null in every row or absent" in skipped[group]
