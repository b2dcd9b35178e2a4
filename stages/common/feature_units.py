"""Model inputs back into the units an analyst knows, for the eval report and alerts.html.

Silver feeds counts and sizes to the model as ``log1p`` (stages/silver features.py and
windows.py), so ``pair_distinct_port_1m 3.33`` is 27 ports. Both reports show the raw
value with its unit beside the robust z-score; this table is the one place that knows
which features are log-scaled.
"""

from __future__ import annotations

import math
import re

__all__ = ["raw_value", "raw_text"]

_LOG1P_UNITS = (
    (re.compile(r"log_(src|dst)_bytes_per_pkt"), "bytes/packet"),
    (re.compile(r"log_(src|dst)(_ip)?_bytes"), "bytes"),
    (re.compile(r"log_(src|dst)_pkts"), "packets"),
    (re.compile(r"log_duration"), "s"),
    (re.compile(r"log_bytes_per_s"), "bytes/s"),
    (re.compile(r"(src|pair|dst)_conns_\w+"), "connections"),
    (re.compile(r"src_distinct_dst_\w+"), "destinations"),
    (re.compile(r"(src|pair)_distinct_port_\w+"), "ports"),
    (re.compile(r"dst_distinct_src_\w+"), "sources"),
)
_COUNTS = frozenset({"packets", "connections", "destinations", "ports", "sources"})


def raw_value(feature: str, value: float) -> tuple[float, str]:
    """The feature's value as the analyst knows it (27 ports, not log1p 3.33) and its unit ('' if none)."""
    for pattern, unit in _LOG1P_UNITS:
        if pattern.fullmatch(feature):
            return (math.expm1(value) if math.isfinite(value) else value), unit
    return value, ""


def raw_text(feature: str, value: float) -> str:
    """``raw_value`` as display text: '27 ports', '1,200 bytes', '2.5 s', '0.412' (plain text, not HTML)."""
    raw, unit = raw_value(feature, value)
    if not math.isfinite(raw):
        return str(raw)
    number = f"{raw:,.0f}" if unit in _COUNTS or (unit == "bytes" and raw >= 10) else f"{raw:.3g}"
    return f"{number} {unit}".rstrip()
