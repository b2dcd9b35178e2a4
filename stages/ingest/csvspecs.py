"""CSV dialects: the CICFlowMeter / CIC-IDS2017 and UNSW-NB15 presets and ``--mapping`` files.

A ``Spec`` says which CSV column feeds each canonical field (a tuple of aliases, first
present wins), where the label and attack category are, and how timestamps and durations
are written. Presets are Specs; ``--mapping FILE`` builds one from JSON::

    {"columns": {"src_ip": "Src", "dst_ip": "Dst", "src_bytes": "Bytes Out"},
     "label": {"column": "Class", "benign": ["ok"], "attack_column": "Kind"},
     "timestamp": {"column": "When", "format": "%Y-%m-%d %H:%M:%S" | "iso" | "epoch", "unit": "s"},
     "duration_unit": "ms"}

With a ``benign`` list, every other label value is an attack name; without it, only the
usual words count (benign/normal/0 vs malicious/attack/1) and anything else is unknown.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from stages.common.errors import InputError
from stages.common.schema import FLOW_COLUMNS

from .normalise import BENIGN_WORDS

__all__ = ["PRESETS", "UNSW_FULL_COLUMNS", "Spec", "load_mapping", "normal_name"]

UNSW_FULL_COLUMNS = (
    "srcip sport dstip dsport proto state dur sbytes dbytes sttl dttl sloss dloss service Sload Dload Spkts Dpkts "
    "swin dwin stcpb dtcpb smeansz dmeansz trans_depth res_bdy_len Sjit Djit Stime Ltime Sintpkt Dintpkt tcprtt "
    "synack ackdat is_sm_ips_ports ct_state_ttl ct_flw_http_mthd is_ftp_login ct_ftp_cmd ct_srv_src ct_srv_dst "
    "ct_dst_ltm ct_src_ltm ct_src_dport_ltm ct_dst_sport_ltm ct_dst_src_ltm attack_cat Label"
).split()


@dataclass(frozen=True)
class Spec:
    """How one CSV dialect maps onto the canonical schema (names are ``normal_name``d)."""

    name: str
    columns: dict[str, tuple[str, ...]]
    label: tuple[str, ...] = ()
    attack: tuple[str, ...] = ()
    names_are_attacks: bool = False
    benign: frozenset[str] = BENIGN_WORDS
    ts_format: str | None = None  # strptime format, "dmy-auto", "iso" or None (epoch numbers)
    ts_unit: str = "s"
    duration_unit: str = "s"
    required: tuple[str, ...] = ()
    detect: tuple[str, ...] = field(default=())  # header names that identify the preset


PRESETS = {
    "cicids2017": Spec(
        name="cicids2017",
        columns={
            "src_ip": ("source ip", "src ip"),
            "src_port": ("source port", "src port"),
            "dst_ip": ("destination ip", "dst ip"),
            "dst_port": ("destination port", "dst port"),
            "proto": ("protocol",),
            "ts": ("timestamp",),
            "duration": ("flow duration",),
            "src_pkts": ("total fwd packets", "tot fwd pkts", "total fwd packet"),
            "dst_pkts": ("total backward packets", "tot bwd pkts", "total bwd packets"),
            "src_bytes": ("total length of fwd packets", "totlen fwd pkts", "total length of fwd packet"),
            "dst_bytes": ("total length of bwd packets", "totlen bwd pkts", "total length of bwd packet"),
        },
        label=("label",),
        names_are_attacks=True,
        ts_format="dmy-auto",
        duration_unit="us",
        required=("duration", "src_pkts", "dst_pkts"),
        detect=("flow duration",),
    ),
    "unsw-nb15": Spec(
        name="unsw-nb15",
        columns={
            "src_ip": ("srcip",),
            "src_port": ("sport",),
            "dst_ip": ("dstip",),
            "dst_port": ("dsport",),
            "proto": ("proto",),
            "service": ("service",),
            "conn_state": ("state",),
            "ts": ("stime",),
            "duration": ("dur",),
            "src_bytes": ("sbytes",),
            "dst_bytes": ("dbytes",),
            "src_pkts": ("spkts",),
            "dst_pkts": ("dpkts",),
        },
        label=("label",),
        attack=("attack_cat",),
        required=("duration", "src_bytes", "dst_bytes"),
        detect=("sbytes", "dbytes", "attack_cat"),
    ),
}


def normal_name(name: str) -> str:
    """Header names compared trimmed, lower case, single spaces, without a BOM."""
    return re.sub(r"\s+", " ", name.replace("\ufeff", "").strip()).lower()


def load_mapping(path: Path) -> Spec:
    """A ``--mapping`` JSON file → Spec; InputError naming the file and the bad key."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the mapping JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("columns", {}), dict):
        raise InputError(f'{path}: a mapping is a JSON object with "columns": {{canonical: csv_column}}')
    unknown = set(doc) - {"columns", "label", "timestamp", "duration_unit"}
    bad_cols = [k for k in doc.get("columns", {}) if k not in FLOW_COLUMNS or k in ("label", "attack_type", "source")]
    if unknown or bad_cols:
        raise InputError(
            f"{path}: unknown key(s) {sorted(unknown) + bad_cols}; columns must be canonical names "
            f"({', '.join(c for c in FLOW_COLUMNS if c not in ('label', 'attack_type', 'source'))})"
        )
    lab, ts = doc.get("label") or {}, doc.get("timestamp") or {}
    if not isinstance(lab, dict) or not isinstance(ts, dict):
        raise InputError(f'{path}: "label" and "timestamp" must be JSON objects (see python -m stages.ingest --help)')
    texts = [(f"columns.{k}", v) for k, v in doc.get("columns", {}).items()]
    texts += [(f"label.{k}", lab[k]) for k in ("column", "attack_column") if lab.get(k) is not None]
    texts += [(f"timestamp.{k}", ts[k]) for k in ("column", "format", "unit") if ts.get(k) is not None]
    texts += [("duration_unit", doc["duration_unit"])] if "duration_unit" in doc else []
    benign = lab.get("benign")
    if benign is not None and not isinstance(benign, list):
        texts.append(("label.benign", benign))
    items = enumerate(benign if isinstance(benign, list) else [])
    texts += [(f"label.benign[{i}]", b) for i, b in items if not isinstance(b, (str, int, float))]
    wrong = [key for key, value in texts if not isinstance(value, str)]
    if wrong:
        raise InputError(f"{path}: {', '.join(wrong[:5])} must be text (benign: a list of words)")
    columns: dict[str, tuple[str, ...]] = {str(k): (normal_name(v),) for k, v in doc.get("columns", {}).items()}
    if ts.get("column"):
        columns["ts"] = (normal_name(ts["column"]),)
    units = ("s", "ms", "us", "ns")
    if ts.get("unit", "s") not in units or doc.get("duration_unit", "s") not in units:
        raise InputError(f"{path}: timestamp.unit and duration_unit must be one of {', '.join(units)}")
    return Spec(
        name=f"mapping:{path.name}",
        columns=columns,
        label=(normal_name(lab["column"]),) if lab.get("column") else (),
        attack=(normal_name(lab["attack_column"]),) if lab.get("attack_column") else (),
        names_are_attacks=benign is not None,
        benign=frozenset(str(b).strip().lower() for b in benign) if benign is not None else BENIGN_WORDS,
        ts_format=None if ts.get("format") in (None, "epoch") else ts["format"],
        ts_unit=ts.get("unit", "s"),
        duration_unit=doc.get("duration_unit", "s"),
        required=tuple(columns),
    )
