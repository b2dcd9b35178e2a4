"""Silver output as a set of parts: one features file, or a directory of ``part=<k>/`` folders.

A partitioned run writes ``DIR/part=<k>/features.parquet`` and ``DIR/part=<k>/manifest.json``
per partition (k in time order); a single-pod run writes one features file and its manifest.
Train and eval open either with ``open_silver`` and see the same thing: the parts in order,
each with its own manifest, and one combined manifest (the shared features and schema hash,
row counts summed), so neither has to know how silver was run.

Opening reads only the manifests and the Parquet footers; a directory is refused (InputError,
naming the part) when a part lacks a file, when parts disagree on the features, or when a
holdout part starts before a train part ends (the holdout would not be the latest data).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .contracts import SilverManifest
from .errors import InputError
from .storage import Location

if TYPE_CHECKING:
    from .runner import StageContext

log = logging.getLogger(__name__)

__all__ = [
    "SilverPart",
    "SilverSet",
    "open_silver",
    "fetch_silver",
    "part_folder",
    "part_uri",
    "PART_PREFIX",
    "FEATURES_FILE",
    "MANIFEST_FILE",
]

PART_PREFIX = "part="
FEATURES_FILE = "features.parquet"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class SilverPart:
    key: str
    """"00003" from ``part=00003``; "" for a single features file."""
    features: Path
    """The part's features.parquet (local)."""
    features_uri: str
    """Names the features file in errors and the audit."""
    manifest: SilverManifest
    """The part's own manifest (its rows and split)."""

    @property
    def train_rows(self) -> int:
        return int(self.manifest.split.get("train_rows", 0))

    @property
    def holdout_rows(self) -> int:
        return int(self.manifest.split.get("holdout_rows", 0))


@dataclass(frozen=True)
class SilverSet:
    manifest: SilverManifest
    """Combined: the parts' shared features/dtypes/schema_hash; rows and split train_rows and
    holdout_rows summed; has_labels when any part has labels. A single file: its own manifest."""
    parts: list[SilverPart]
    """In part (time) order; a single file is one part with key ""."""

    def holdout_parts(self) -> list[SilverPart]:
        """The parts holding holdout rows, in order."""
        return [p for p in self.parts if p.holdout_rows > 0]

    def train_parts(self) -> list[SilverPart]:
        """The parts holding train rows, in order."""
        return [p for p in self.parts if p.train_rows > 0]


def open_silver(features: Path, manifest: Path, features_uri: str, manifest_uri: str) -> SilverSet:
    """The silver output at ``features`` + ``manifest``: two files, or two directories of parts.

    The directories may be one and the same (the usual case); the parts are the
    ``part=<k>`` folders of ``features``, each manifest found under ``manifest``.
    """
    if features.is_dir() != manifest.is_dir():
        folder, other = (features_uri, manifest_uri) if features.is_dir() else (manifest_uri, features_uri)
        raise InputError(
            f"{folder} is a directory of parts but {other} is not; pass the same directory as --features and "
            "--manifest for a partitioned silver run, or a features file and its manifest"
        )
    if not features.is_dir():
        part = SilverPart("", features, features_uri, SilverManifest.read(manifest, manifest_uri))
        return SilverSet(part.manifest, [part])
    parts = [
        _read_part(key, features, manifest, features_uri, manifest_uri) for key in _part_keys(features, features_uri)
    ]
    for part in parts[1:]:
        _check_same_features(parts[0], part)
    _check_time_order(parts)
    return SilverSet(_combined(parts), parts)


def fetch_silver(ctx: StageContext, features_uri: str, manifest_uri: str) -> SilverSet:
    """``open_silver`` on the stage's inputs, each part's files recorded as inputs of the stage.

    A local directory is read in place; an S3 prefix (``s3://b/silver/<run>/``, no object
    at the key itself) has its parts' files downloaded; anything else is one file + manifest.
    Audit names: ``features`` and ``manifest``, or ``features/part=<k>`` and ``manifest/part=<k>``.
    """
    features = part_folder(ctx, features_uri)
    manifest = part_folder(ctx, manifest_uri)
    if features is None and manifest is None:
        manifest = ctx.fetch_input("manifest", manifest_uri)
        features = ctx.fetch_input("features", features_uri)
        return open_silver(features, manifest, features_uri, manifest_uri)
    features = features or ctx.storage.fetch(features_uri)
    manifest = manifest or ctx.storage.fetch(manifest_uri)
    silver = open_silver(features, manifest, features_uri, manifest_uri)
    for part in silver.parts:
        folder = PART_PREFIX + part.key
        m_path, m_uri = manifest / folder / MANIFEST_FILE, part_uri(manifest_uri, part.key, MANIFEST_FILE)
        ctx.record("input", f"manifest/{folder}", m_uri, m_path)
        ctx.record("input", f"features/{folder}", part.features_uri, part.features, part.manifest.rows)
    return silver


def part_folder(ctx: StageContext, uri: str, names: tuple[str, ...] = (FEATURES_FILE, MANIFEST_FILE)) -> Path | None:
    """The local directory holding the parts' ``names`` files at ``uri`` (downloaded from S3; the folder
    itself when local), or None when ``uri`` is a file."""
    loc = Location.parse(uri)
    if loc.scheme == "file":
        return loc.path if loc.path.is_dir() else None
    if not loc.key.endswith("/") and ctx.storage.exists(uri):
        return None
    prefix = loc.key.rstrip("/") + "/"
    wanted = [
        key
        for key, _, _ in ctx.storage.list_objects(loc.bucket, prefix)
        if _is_part_file(key[len(prefix) :].split("/"), names)
    ]
    if not wanted:
        raise InputError(f"{uri}: no such object, and no {PART_PREFIX}<k>/ parts under it; check the run's URI")
    paths = [ctx.storage.fetch(f"s3://{loc.bucket}/{key}") for key in wanted]
    return paths[0].parents[1]


def _is_part_file(relative: list[str], names: tuple[str, ...]) -> bool:
    """``part=<k>/<one of names>`` (split on "/")."""
    return len(relative) == 2 and relative[0].startswith(PART_PREFIX) and relative[1] in names


def _part_keys(folder: Path, uri: str) -> list[str]:
    """The k of every ``part=<k>`` folder, in time order (numeric when every k is a number)."""
    keys = [p.name[len(PART_PREFIX) :] for p in folder.iterdir() if p.name.startswith(PART_PREFIX)]
    if not keys:
        raise InputError(
            f"{uri}: no {PART_PREFIX}<k> folders in this directory; pass a partitioned silver run's directory "
            f"(DIR/{PART_PREFIX}<k>/{FEATURES_FILE}) or a features file"
        )
    if "" in keys:
        raise InputError(f"{uri}/{PART_PREFIX}: a part folder without its key; name it {PART_PREFIX}<k>")
    numeric = all(k.isdigit() for k in keys)
    return sorted(keys, key=lambda k: (int(k), k) if numeric else (0, k))


def part_uri(folder_uri: str, key: str, name: str) -> str:
    """``<folder_uri>/part=<key>/<name>``: how errors and the audit name one part's file."""
    return f"{folder_uri.rstrip('/')}/{PART_PREFIX}{key}/{name}"


def _read_part(key: str, features: Path, manifest: Path, features_uri: str, manifest_uri: str) -> SilverPart:
    folder = PART_PREFIX + key
    f_path, m_path = features / folder / FEATURES_FILE, manifest / folder / MANIFEST_FILE
    f_uri, m_uri = part_uri(features_uri, key, FEATURES_FILE), part_uri(manifest_uri, key, MANIFEST_FILE)
    for path, uri in ((f_path, f_uri), (m_path, m_uri)):
        if not path.is_file():
            raise InputError(
                f"{uri}: part {key} has no {path.name}; re-run silver for partition {key}, or remove its folder"
            )
    part_manifest = SilverManifest.read(m_path, m_uri)
    if part_manifest.mode != "train":
        raise InputError(f"{m_uri}: a scoring-mode manifest in a training run's parts; re-run silver for part {key}")
    return SilverPart(key, f_path, f_uri, part_manifest)


def _check_same_features(first: SilverPart, part: SilverPart) -> None:
    a, b = first.manifest, part.manifest
    if a.schema_hash == b.schema_hash and a.passthrough == b.passthrough:
        return
    if a.features != b.features:
        only_a = [f for f in a.features if f not in b.features]
        only_b = [f for f in b.features if f not in a.features]
        what = f"features only in part {first.key}: {only_a[:10]}, only in part {part.key}: {only_b[:10]}"
        if not only_a and not only_b:
            what = "the same features in another order"
    elif a.dtypes != b.dtypes:
        what = "dtypes " + ", ".join(
            f"{f}: {a.dtypes.get(f)} vs {b.dtypes.get(f)}" for f in a.features if a.dtypes.get(f) != b.dtypes.get(f)
        )
    else:
        what = f"passthrough columns {a.passthrough} vs {b.passthrough}"
    raise InputError(
        f"{first.features_uri} and {part.features_uri}: parts {first.key} and {part.key} were built with different "
        f"features (schema_hash {a.schema_hash[:12]} vs {b.schema_hash[:12]}; {what}); re-run silver for every "
        "partition with the same silver image and options"
    )


def _ts_range(part: SilverPart) -> tuple[dt.datetime, dt.datetime] | None:
    """(first, last) ``ts`` of a part from its row-group statistics (footer only); None when unknown."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(part.features).metadata
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{part.features_uri}: not a readable Parquet file ({exc}); re-run silver") from exc
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if "ts" not in names:
        return None
    column = names.index("ts")
    lows: list[Any] = []
    highs: list[Any] = []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(column).statistics
        if meta.row_group(g).num_rows == 0:
            continue
        if stats is None or not stats.has_min_max:
            return None
        lows.append(stats.min)
        highs.append(stats.max)
    if not lows or not all(isinstance(v, dt.datetime) for v in (*lows, *highs)):
        return None
    return min(lows), max(highs)


def _cutoff(part: SilverPart) -> dt.datetime | None:
    """The part's split ``cutoff_ts``: holdout rows are at or after it, train rows before it."""
    value = part.manifest.split.get("cutoff_ts")
    if value is None:
        return None
    try:
        cutoff = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{part.features_uri}: its manifest's split.cutoff_ts {str(value)[:40]!r} is not an ISO 8601 time; "
            "re-run silver for this part"
        ) from exc
    return cutoff if cutoff.tzinfo else cutoff.replace(tzinfo=dt.UTC)


def _check_time_order(parts: list[SilverPart]) -> None:
    """The holdout is the latest data: no holdout part may start before the latest train part starts.

    A part's ``cutoff_ts`` is where its sides meet (train flows before it, holdout flows at or
    after it, as silver writes it: a train partition's is just after its last flow, a holdout
    partition's its first flow); without it the ``ts`` statistics give the same bounds. Hourly
    exports overlap a little (Zeek writes a flow when it ends, stamped with its start, so the next
    file holds flows that began before this one's last): a holdout that starts inside the last
    train part is a warning naming the overlap; one that starts before it, files out of order,
    is an error. Parts without timestamps (a row-order split) are not compared.
    """
    ends: list[tuple[dt.datetime, SilverPart]] = []
    train_starts: list[tuple[dt.datetime, SilverPart]] = []
    starts: list[tuple[dt.datetime, SilverPart]] = []
    for part in parts:
        cutoff = _cutoff(part)
        span = _ts_range(part) if cutoff is None or part.train_rows > 0 else None
        if part.train_rows > 0:
            end = cutoff or (span[1] + dt.timedelta(microseconds=1) if span else None)
            if end is not None:
                ends.append((end, part))
            if span:
                train_starts.append((span[0], part))
        if part.holdout_rows > 0:
            start = cutoff or (span[0] if span else None)
            if start is not None:
                starts.append((start, part))
    if not ends or not starts:
        return
    end, train = max(ends, key=lambda e: e[0])
    start, holdout = min(starts, key=lambda s: s[0])
    if start >= end:
        return
    latest, first_train = max(train_starts, key=lambda t: t[0]) if train_starts else (end, train)
    if start < latest:
        raise InputError(
            f"{holdout.features_uri}: holdout part {holdout.key} begins at {start.isoformat()}, before train part "
            f"{first_train.key} begins ({latest.isoformat()}; {first_train.features_uri}); the holdout must be the "
            "latest data: list the partitions in time order and split them again"
        )
    log.warning(
        "holdout part %s begins at %s, %.0f s before train part %s ends (%s): flows that started before the "
        "boundary and were written to the next file; they are evaluated, not trained on",
        holdout.key,
        start.isoformat(),
        (end - start).total_seconds(),
        train.key,
        end.isoformat(),
    )


def _common(values: list[Any], default: Any) -> Any:
    return values[0] if all(v == values[0] for v in values) else default


def _combined(parts: list[SilverPart]) -> SilverManifest:
    """One manifest for all parts: the first part's features, rows and the split summed."""
    manifests = [p.manifest for p in parts]
    train = sum(p.train_rows for p in parts)
    holdout = sum(p.holdout_rows for p in parts)
    starts = [(c, p) for p in parts if p.holdout_rows > 0 and (c := _cutoff(p)) is not None]
    split = {
        "method": _common([m.split.get("method") for m in manifests], "partition"),
        "train_rows": train,
        "holdout_rows": holdout,
        # the fraction the run asked for when the parts agree, else the share it got
        "holdout_fraction": _common(
            [m.split.get("holdout_fraction") for m in manifests], round(holdout / max(1, train + holdout), 6)
        ),
        "cutoff_ts": min(starts, key=lambda s: s[0])[1].manifest.split["cutoff_ts"] if starts else None,
        "parts": len(parts),
        "train_parts": sum(1 for p in parts if p.train_rows > 0),
        "holdout_parts": sum(1 for p in parts if p.holdout_rows > 0),
    }
    return replace(
        manifests[0],
        rows=sum(m.rows for m in manifests),
        has_labels=any(m.has_labels for m in manifests),
        input_sha256=_common([m.input_sha256 for m in manifests], ""),
        split=split,
        extra=dict(manifests[0].extra),
    )
