"""Helpers shared by the test suites."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_stage(
    stage: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m stages.<stage> args...`` as a real process and return it completed."""
    return subprocess.run(
        [sys.executable, "-m", f"stages.{stage}", *args],
        env=env,
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def landing_files(folder: Path, rows: int, files: int) -> list[Path]:
    """A landing folder: synthetic flows through the real ingest stage (no audit), cut by time into
    ``files`` Parquet files ``conn.<i>.parquet``, as a sensor's hourly exports would be."""
    import os

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    whole = folder.parent / f"{folder.name}-whole.parquet"
    done = run_stage(
        "ingest",
        f"--source=synthetic://?rows={rows}&seed=7&attack_share=0.02&days=4",
        f"--output={whole}",
        f"--rejects={folder.parent / 'rejects.parquet'}",
        env={**os.environ, "PG_HOST": ""},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = pq.read_table(whole).sort_by("ts")
    ts = table.column("ts")
    lo, hi = pc.min(ts).as_py(), pc.max(ts).as_py()
    step = (hi - lo) / files
    paths = []
    for i in range(files):
        start, end = lo + step * i, lo + step * (i + 1)
        mask = pc.and_(pc.greater_equal(ts, start), pc.less(ts, end) if i < files - 1 else pc.less_equal(ts, hi))
        path = folder / f"conn.{i:02d}.parquet"
        pq.write_table(table.filter(mask), path)
        paths.append(path)
    return paths


HOST_SCRATCH = Path("/var/tmp")
"""Where tests put files a local pod must read by host path. Not /tmp: the subprocess runtime maps
every /tmp path of a pod into its sandbox (the templates mount an emptyDir there, as a real pod's /tmp
hides the host's), and a clone of this repository may itself live under /tmp."""


def host_scratch_dir(prefix: str) -> Path:
    """A fresh directory under :data:`HOST_SCRATCH`, readable by other users (PostgreSQL runs as postgres)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=prefix, dir=HOST_SCRATCH))
    path.chmod(0o755)
    return path
