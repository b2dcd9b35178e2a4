"""Reading silver's output for training: the train rows of every part, checked against the manifests.

A features file and a manifest from different runs (or a hand-edited manifest) would
silently feed the model the wrong columns; every check here names the part's file and the
field, and says to re-run silver.

The stage holds at most ``max_rows`` train rows (``--max-train-rows``): beyond that, a
seeded sample across the train parts. Each part's share of the sample follows from the
manifests alone (its train rows out of all of them), and the rows it keeps from a generator
seeded with (seed, part key), so the same seed and parts give the same rows in whatever
order the parts are read; memory is the sample plus one read batch, not the whole split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stages.common.contracts import SilverManifest
from stages.common.errors import InputError
from stages.common.silver_parts import SilverPart, SilverSet

__all__ = ["TrainSample", "read_manifest", "require_training", "quotas", "part_rows", "read_train_sample"]

BATCH_ROWS = 262_144
"""Rows decoded at a time: the reading's memory beyond the sample."""


def read_manifest(path: Path, where: str) -> SilverManifest:
    """The silver manifest of a training-mode run (``SilverManifest.read`` checks every field)."""
    manifest = SilverManifest.read(path, where)
    require_training(manifest, where)
    return manifest


def require_training(manifest: SilverManifest, where: str) -> None:
    if manifest.mode != "train":
        raise InputError(f"{where}: a scoring-mode manifest has no train split; pass the training silver run's")


@dataclass
class TrainSample:
    """The train rows the model sees: float32 ``X`` (manifest feature order), in time order."""

    X: np.ndarray
    labels: np.ndarray | None
    """int8 0/1 with -1 for unknown; None when no part has labels."""
    rows_seen: int
    """Train rows in the parts (the manifests' train_rows summed)."""
    parts: list[str]
    """Keys of the train parts read, in order ("" for a single file)."""
    max_rows: int

    @property
    def rows_kept(self) -> int:
        return len(self.X)

    def as_params(self) -> dict[str, Any]:
        """What the model card and MLflow record about the sample."""
        return {
            "rows_seen": self.rows_seen,
            "rows_kept": self.rows_kept,
            "max_train_rows": self.max_rows,
            "sampled": self.rows_kept < self.rows_seen,
            "parts": len(self.parts),
            "part_keys": _key_range(self.parts),
        }


def _key_range(keys: list[str]) -> str:
    """ "00000" or "00000..00069": the parts read, short enough for an MLflow parameter."""
    return keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]}" if keys else ""


def quotas(train_rows: list[int], max_rows: int) -> list[int]:
    """Rows each part keeps: all of them within ``max_rows``, else shares of ``max_rows``
    in proportion to the part's train rows (largest remainders first, then part order)."""
    total = sum(train_rows)
    if total <= max_rows:
        return list(train_rows)
    exact = [n * max_rows / total for n in train_rows]
    kept = [int(x) for x in exact]
    by_remainder = sorted(range(len(kept)), key=lambda i: (-(exact[i] - kept[i]), i))
    for i in by_remainder[: max_rows - sum(kept)]:
        kept[i] += 1
    return kept


def part_rows(train_rows: int, keep: int, seed: int, key: str) -> np.ndarray | None:
    """Positions (among the part's train rows, increasing) of the ``keep`` rows it contributes;
    None for all of them. Seeded by (seed, part key) only: independent of the other parts."""
    if keep >= train_rows:
        return None
    key_entropy = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    rng = np.random.default_rng([seed, key_entropy])
    return np.sort(rng.choice(train_rows, keep, replace=False))


def _check_columns(part: SilverPart, manifest: SilverManifest) -> None:
    """The part's columns (its footer) against the (combined) manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = part.features_uri
    try:
        schema = pq.read_schema(part.features)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{where}: not a readable Parquet file ({exc})") from exc
    names = schema.names
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"{where}: column(s) {twice[:10]} appear more than once; re-run silver")
    features = manifest.features
    problems = [f"{f} missing" for f in features if f not in names]
    problems += [
        f"{f} is {schema.field(f).type}, manifest says float32"
        for f in features
        if f in names and schema.field(f).type != pa.float32()
    ]
    problems += [f"{c} missing" for c in ("split", "label") if c not in names]
    problems += [f"{n} is not in the manifest" for n in names if n not in (*features, *manifest.passthrough, "split")]
    if problems:
        raise InputError(
            f"{where}: does not match the manifest ({'; '.join(problems[:10])}); "
            "use the manifest written with these features"
        )


def _fill_part(
    part: SilverPart, features: list[str], chosen: np.ndarray | None, X: np.ndarray, labels: np.ndarray
) -> None:
    """Write the part's kept train rows into ``X`` and ``labels`` (sized for them), batch by batch."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    expected, where = part.train_rows, part.features_uri
    pf = pq.ParquetFile(part.features)
    seen = filled = 0
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[*features, "label", "split"]):
        train = pc.equal(batch.column("split"), "train")
        if not pc.any(train).as_py():
            continue
        rows = batch.filter(train)
        if seen + rows.num_rows > expected:
            raise InputError(f"{where}: more split == 'train' rows than the manifest's {expected}; re-run silver")
        if chosen is None:
            take: np.ndarray | slice = slice(None)
            out = slice(filled, filled + rows.num_rows)
        else:
            lo, hi = np.searchsorted(chosen, [seen, seen + rows.num_rows])
            take = chosen[lo:hi] - seen
            out = slice(filled, filled + len(take))
        seen += rows.num_rows
        for j, name in enumerate(features):
            X[out, j] = rows.column(name).to_numpy(zero_copy_only=False)[take]
        labels[out] = pc.fill_null(rows.column("label"), -1).to_numpy(zero_copy_only=False)[take]
        filled = out.stop
    if seen != expected:
        raise InputError(f"{where}: {seen} rows with split == 'train', the manifest says {expected}; re-run silver")
    if len(X) != filled:
        raise AssertionError(f"{where}: kept {filled} rows, {len(X)} were planned")


def read_train_sample(silver: SilverSet, max_rows: int, seed: int) -> TrainSample:
    """The ``split == "train"`` rows of every train part (at most ``max_rows``, a seeded sample
    beyond), in part order and within a part in file (time) order, which the validation split
    relies on."""
    import pyarrow as pa

    manifest = silver.manifest
    parts = silver.train_parts()
    total = sum(p.train_rows for p in parts)
    if total == 0:
        where = silver.parts[0].features_uri if silver.parts else "silver"
        raise InputError(f"{where}: 0 rows with split == 'train' (manifest train_rows 0); re-run silver")
    for part in parts:  # every part's footer first: a bad part fails before minutes of reading
        _check_columns(part, manifest)
    keep = quotas([p.train_rows for p in parts], max_rows)
    features = manifest.features
    X = np.empty((sum(keep), len(features)), dtype=np.float32)
    labels = np.empty(len(X), dtype=np.int8)
    start = 0
    for part, n in zip(parts, keep, strict=True):
        rows = slice(start, start + n)
        try:
            _fill_part(part, features, part_rows(part.train_rows, n, seed, part.key), X[rows], labels[rows])
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{part.features_uri}: corrupt Parquet data ({exc}); re-run silver") from exc
        # Arrow's pool (mimalloc) keeps the decoded batches' pages; numpy cannot reuse them while fitting.
        # Handing them back cuts the stage's peak by ~0.5 GB (3M rows: 2.0 -> 1.5 GB).
        pa.default_memory_pool().release_unused()
        if not np.isfinite(X[rows]).all():
            bad = [f for f, col in zip(features, X[rows].T, strict=True) if not np.isfinite(col).all()]
            raise InputError(f"{part.features_uri}: non-finite values in {bad[:5]}; re-run silver")
        start = rows.stop
    return TrainSample(X, labels if manifest.has_labels else None, total, [p.key for p in parts], max_rows)
