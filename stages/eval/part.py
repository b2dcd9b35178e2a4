"""``python -m stages.eval.part``: score one holdout partition, for eval's fan-out.

    python -m stages.eval.part --features URI --manifest URI --model URI --card URI --output URI

The partitioned pipeline runs one of these pods per holdout partition, in parallel: each
checks the model against its card and the part's manifest, exactly as eval does, and
writes the anomaly scores of the part's holdout rows, in row order, as ``scores.parquet``
(one float64 column ``score``). Eval then takes the directory of those files
(``--scores DIR/part=<k>/scores.parquet``) instead of scoring: the scores are the same
floats eval would compute, so metrics.json does not depend on where the scoring ran.

Exit 0 when written, 2 on bad inputs (a model that does not fit the features, a part
without holdout rows, NaN scores).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from stages.common.runner import StageContext, main_exit, run_stage

__all__ = ["SCORES_FILE", "SCORE_COLUMN", "build_parser", "body", "read_scores", "main"]

log = logging.getLogger("stages.eval.part")

SCORES_FILE = "scores.parquet"
SCORE_COLUMN = "score"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m stages.eval.part",
        description="Score the holdout rows of one silver partition with the trained model (eval's fan-out); "
        "eval --scores merges the parts' files.",
    )
    p.add_argument("--features", required=True, help="one partition's silver features.parquet")
    p.add_argument("--manifest", required=True, help="that partition's manifest.json")
    p.add_argument("--model", required=True, help="model.skops from train (loaded with skops, trusted types only)")
    p.add_argument("--card", required=True, help="model-card.json from train (schema hash, model sha256)")
    p.add_argument("--output", required=True, help=f"where to write {SCORES_FILE} (column '{SCORE_COLUMN}', float64)")
    return p


def body(ctx: StageContext) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from stages.common.contracts import ModelCard, SilverManifest
    from stages.common.errors import InputError
    from stages.common.model_io import load_model

    from .evaluate import score
    from .inputs import check_contract, check_model_file, load_part

    a = ctx.args
    manifest = SilverManifest.read(ctx.fetch_input("manifest", a.manifest), a.manifest)
    card = ModelCard.read(ctx.fetch_input("card", a.card), a.card)
    check_contract(manifest, card, a.manifest, a.card)
    model_path = ctx.fetch_input("model", a.model)
    check_model_file(model_path, card, a.model, a.card)  # before skops reads a byte of it
    data = load_part(ctx.fetch_input("features", a.features, manifest.rows), manifest.features, a.features)
    if not data.holdout_X.shape[0]:
        raise InputError(
            f"{a.features}: no holdout rows (split == 'holdout'); only the partitions listed as holdout are scored"
        )
    data.train_X = data.train_X[:0]  # not needed here: free it before scoring
    scores = score(load_model(model_path), data, card.score_method, a.model)
    with ctx.output("scores", a.output, ".parquet", primary=True) as out:
        pq.write_table(pa.table({SCORE_COLUMN: pa.array(scores, pa.float64())}), out.path)
        out.rows = int(scores.size)
    log.info("scored %d holdout rows", scores.size)
    ctx.metrics.update(holdout_rows=int(scores.size), alerts=int((scores >= card.threshold).sum()))
    ctx.set_param("rows", scores.size)


def read_scores(path: Path, uri: str, rows: int) -> np.ndarray:
    """The scores one ``stages.eval.part`` pod wrote for a part of ``rows`` holdout rows, checked."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from stages.common.errors import InputError

    if not path.is_file():
        raise InputError(
            f"{uri}: missing; every holdout partition needs its scores from python -m stages.eval.part "
            "(did its eval-part pod run?)"
        )
    try:
        table = pq.read_table(path, columns=[SCORE_COLUMN])
    except (pa.ArrowException, OSError, KeyError) as exc:
        raise InputError(f"{uri}: not a scores file with a float column '{SCORE_COLUMN}' ({exc})") from exc
    scores = table.column(SCORE_COLUMN).to_numpy().astype(np.float64, copy=False)
    if scores.size != rows:
        raise InputError(
            f"{uri}: {scores.size} scores for a part with {rows} holdout rows; the scores come from another "
            "silver run — re-run eval-part for this partition"
        )
    if not np.all(np.isfinite(scores)):
        raise InputError(f"{uri}: {int(np.sum(~np.isfinite(scores)))} scores are NaN/inf")
    return scores


def main() -> None:
    main_exit(run_stage("eval-part", build_parser(), body))


if __name__ == "__main__":
    main()
