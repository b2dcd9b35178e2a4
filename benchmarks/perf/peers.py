"""Ingest peers on one Zeek conn.log, each timed in a fresh child process.

Three ways to read the same file:

- ``zat``: zat's ``LogToDataFrame().create_dataframe`` — what Python users reach for;
  parse only, into a pandas DataFrame (its own types, ts/duration converted).
- ``pyarrow``: a bare ``pyarrow.csv.read_csv`` — tab-delimited, no quoting, column names
  from ``#fields``, ``#`` lines skipped, ``-``/``(empty)`` as nulls, types inferred.
- ``ours``: the ingest stage's own functions (``read_source`` + ``write_chunks``):
  parse, validate every row, quarantine bad ones, count duplicates and write RAW Parquet
  plus rejects — everything ``python -m stages.ingest`` does except the audit and sha256.
- ``ours-read``: the same reader without the writer — parse, validate and quarantine only,
  chunks dropped — to show what writing Parquet and counting duplicates cost.
- ``ours-cli``: ``python -m stages.ingest`` as a subprocess (interpreter start, imports,
  audit off, sha256 of the output included) — for reference.

The timer in the child covers the call only (imports and interpreter start-up are
outside it, for every peer alike, including the pandas import pyarrow makes lazily); CPU seconds and peak RSS come from ``os.wait4`` on
the child, so they are exact. Run as ``python -m benchmarks.perf.peers NAME FILE DIR``
(prints one JSON line).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["PEERS", "PeerRun", "run_peer", "zeek_fields"]

PEERS = ("zat", "pyarrow", "ours", "ours-read", "ours-cli")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class PeerRun:
    """One timed run: ``seconds`` is the wall time of the work itself (see the module doc)."""

    peer: str
    rows: int
    seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    process_seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def zeek_fields(path: Path) -> list[str]:
    """The column names of a Zeek TSV log's ``#fields`` line."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#fields"):
                return line.rstrip("\n").split("\t")[1:]
            if not line.startswith("#"):
                break
    raise ValueError(f"{path}: no #fields header line")


def _zat(path: Path, workdir: Path) -> int:
    from zat.log_to_dataframe import LogToDataFrame

    started = time.perf_counter()
    df = LogToDataFrame().create_dataframe(str(path))
    return _done(started, len(df))


def _pyarrow(path: Path, workdir: Path) -> int:
    import pyarrow.csv as pcsv

    started = time.perf_counter()
    table = pcsv.read_csv(
        path,
        read_options=pcsv.ReadOptions(column_names=zeek_fields(path)),
        parse_options=pcsv.ParseOptions(
            delimiter="\t",
            quote_char=False,
            invalid_row_handler=lambda row: "skip" if row.text.startswith("#") else "error",
        ),
        convert_options=pcsv.ConvertOptions(null_values=["-", "(empty)"], strings_can_be_null=True),
    )
    return _done(started, table.num_rows)


def _warm_imports() -> None:
    """Import what pyarrow imports lazily on its first Python→Arrow conversion: pandas, when installed.

    The ingest image has no pandas, but this venv has; without this the first chunk of
    ours would pay ~0.4 s of pandas import inside the timer (zat's import is outside it).
    """
    import pyarrow as pa

    pa.scalar(0.0)


def _ours(path: Path, workdir: Path) -> int:
    from stages.ingest.readers import read_source
    from stages.ingest.writer import write_chunks

    _warm_imports()
    started = time.perf_counter()
    stats = write_chunks(read_source(path, str(path)), workdir / "flows.parquet", workdir / "rejects.parquet")
    return _done(started, stats.rows_in)


def _ours_read(path: Path, workdir: Path) -> int:
    from stages.ingest.readers import read_source

    _warm_imports()
    started = time.perf_counter()
    rows = sum(chunk.rows_in for chunk in read_source(path, str(path)))
    return _done(started, rows)


def _done(started: float, rows: int) -> int:
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}), flush=True)
    return rows


def _spawn(argv: list[str]) -> tuple[str, str, int, float, float, int]:
    """Run ``argv`` and reap it with ``os.wait4``: (stdout, stderr, exit code, wall s, CPU s, peak RSS bytes).

    The audit and MLflow are switched off (empty PG_HOST / MLFLOW_TRACKING_URI): ingest alone is measured.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PG_HOST": "", "MLFLOW_TRACKING_URI": ""}
    started = time.perf_counter()
    out_r, out_w = os.pipe()
    err_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-peer-{os.getpid()}.err"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=out_w, stderr=err, stdin=subprocess.DEVNULL)
    os.close(out_w)
    with os.fdopen(out_r, "rb") as fh:
        out = fh.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen it is reaped
    wall = time.perf_counter() - started
    stderr = err_path.read_text(errors="replace")
    err_path.unlink(missing_ok=True)
    return out, stderr, proc.returncode, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def run_peer(peer: str, path: Path, workdir: Path) -> PeerRun:
    """Time ``peer`` on ``path`` in a fresh process. Raises RuntimeError (with its stderr) when it fails."""
    workdir.mkdir(parents=True, exist_ok=True)
    if peer == "ours-cli":
        argv = [
            sys.executable,
            "-m",
            "stages.ingest",
            "--source",
            str(path),
            "--output",
            str(workdir / "flows.parquet"),
            "--rejects",
            str(workdir / "rejects.parquet"),
            "--params-dir",
            str(workdir / "params"),
            "--log-format",
            "json",
        ]
    else:
        argv = [sys.executable, "-m", "benchmarks.perf.peers", peer, str(path), str(workdir)]
    out, err, code, wall, cpu, rss = _spawn(argv)
    if code != 0:
        raise RuntimeError(f"peer {peer} exited {code}: {err.strip()[-2000:]}")
    if peer == "ours-cli":
        rows = int((workdir / "params" / "rows").read_text()) + int((workdir / "params" / "rejected").read_text())
        return PeerRun(peer, rows, wall, cpu, rss, wall)
    result = json.loads(out.strip().splitlines()[-1])
    return PeerRun(peer, int(result["rows"]), float(result["seconds"]), cpu, rss, wall)


def as_dict(run: PeerRun) -> dict[str, object]:
    return {**asdict(run), "rows_per_second": run.rows_per_second}


def main(argv: list[str]) -> int:
    """Child entry: ``NAME FILE WORKDIR`` → one JSON line ``{"rows": n, "seconds": s}`` on stdout."""
    peer, path, workdir = argv[0], Path(argv[1]), Path(argv[2])
    runner = {"zat": _zat, "pyarrow": _pyarrow, "ours": _ours, "ours-read": _ours_read}[peer]
    runner(path, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
