"""IANA protocol numbers in CSV exports become the registry's keywords (CICFlowMeter writes 0/6/17)."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from stages.ingest.csvflows import _proto
from stages.ingest.protocols import IANA_PROTOCOLS

from .conftest import FIXTURES, Ingested

Ingest = Callable[..., Ingested]
NO_KEYWORD = {61, 63, 68, 99, 114}  # "any host internal protocol", "any local network", ...


def test_every_assigned_number_has_its_keyword() -> None:
    assert set(range(146)) - set(IANA_PROTOCOLS) == NO_KEYWORD
    assert max(IANA_PROTOCOLS) == 145
    spot = {0: "hopopt", 1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre", 50: "esp", 51: "ah"}
    spot |= {58: "ipv6-icmp", 89: "ospfigp", 103: "pim", 112: "vrrp", 132: "sctp", 136: "udplite", 143: "ethernet"}
    assert {n: IANA_PROTOCOLS[n] for n in spot} == spot
    assert all(name == name.strip().lower() and " " not in name for name in IANA_PROTOCOLS.values())


def test_numbers_map_names_stay_and_unassigned_numbers_stay_numbers() -> None:
    got = _proto(pa.array(["0", " 6", "17", "2", "112", "TCP", "unas", "200", "255", "61", None])).to_pylist()
    assert got == ["hopopt", "tcp", "udp", "igmp", "vrrp", "tcp", "unas", "200", "255", "61", None]


def test_cicflowmeter_protocol_zero_is_hopopt(ingest: Ingest) -> None:
    got = ingest(FIXTURES / "cicids2017-corrected.csv")
    assert got.flows.column("proto").to_pylist() == ["tcp", "udp", "hopopt", "tcp", "tcp", "tcp"]
