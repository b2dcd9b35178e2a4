"""``python -m benchmarks.cluster [--cold] [--rows N]``: the single-node cluster tier, measured.

- build: each component's build time from the cache's ``build-times.tsv``; with ``--cold``,
  everything is first rebuilt into an empty cache with empty Go build and module caches
  (what CI meets on a fresh machine: downloads included);
- warm start: ``scripts/cluster/down.sh --purge`` then ``up.sh``: binaries and images
  cached, the cluster itself new (etcd, certificates, PostgreSQL, MinIO), as in CI;
- the pipeline on the cluster: ``scripts/cluster/demo.sh`` (the Job, ``kubectl apply -k k8s/``)
  on N synthetic flows, wall time;
- the machine's peak memory in use (MemTotal - MemAvailable, sampled every 0.5 s) while
  the cluster starts and the pipeline runs.

Needs root, like the cluster. Writes ``benchmarks/cluster/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "cluster"
OUT = Path(__file__).resolve().parent / "RESULTS.md"


def _settings() -> dict[str, str]:
    script = (
        f"source {SCRIPTS / 'lib.sh'} >/dev/null; echo CLUSTER_CACHE=$CLUSTER_CACHE; echo CLUSTER_STATE=$CLUSTER_STATE"
    )
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.split())


class MemoryPeak:
    """Peak of MemTotal - MemAvailable while running, in MiB."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
            used = int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])
            self.peak = max(self.peak, used // 1024)
            time.sleep(0.5)

    def __enter__(self) -> MemoryPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, env=env, cwd=REPO)
    return time.monotonic() - t0


def cold_build() -> list[tuple[str, str, str]]:
    """Rebuild every component into empty caches; (component, version, seconds) rows."""
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        env = {**os.environ, "CLUSTER_CACHE": f"{tmp}/cache", "GOCACHE": f"{tmp}/gocache", "GOMODCACHE": f"{tmp}/gomod"}
        timed([str(SCRIPTS / "build.sh")], env)
        rows = [tuple(line.split("\t")) for line in Path(f"{tmp}/cache/build-times.tsv").read_text().splitlines()]
        subprocess.run(["chmod", "-R", "u+w", tmp], check=False)  # the module cache is read-only
        return [(r[0], r[1], r[2]) for r in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true", help="rebuild everything into empty caches first (~30 min)")
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic flows for the pipeline run")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root, like the cluster itself")
    settings = _settings()
    builds = cold_build() if args.cold else None
    cached = Path(settings["CLUSTER_CACHE"]) / "build-times.tsv"
    with MemoryPeak() as memory:
        subprocess.run([str(SCRIPTS / "down.sh"), "--purge"], check=True)
        start = timed([str(SCRIPTS / "up.sh")])
        source = f"synthetic://?rows={args.rows}&seed=7&attack_share=0.02&days=4"
        pipeline = timed([str(SCRIPTS / "demo.sh"), "-p", f"source={source}"])
    lines = [
        "# The cluster tier: build, start, run",
        "",
        f"{dt.date.today().isoformat()}, {platform.node()} ({os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**30} GiB), "
        f"`python -m benchmarks.cluster{' --cold' if args.cold else ''} --rows {args.rows}`.",
        "",
        "| component | version | build |",
        "|---|---|---|",
    ]
    if builds:
        lines += [
            f"| {c} | {v} | {s} cold (empty Go caches, downloads included, one at a time) |" for c, v, s in builds
        ]
    elif cached.exists():
        for row in cached.read_text().splitlines():
            c, v, s = row.split("\t")
            lines.append(f"| {c} | {v} | {s} (as last built into the cache) |")
    lines += [
        "",
        f"- Warm start (`scripts/cluster/up.sh` after `down.sh --purge`: builds and images cached, a new cluster): {start:.0f} s.",
        f"- The pipeline through the Job (`scripts/cluster/demo.sh`, {args.rows:,} synthetic flows): {pipeline:.0f} s.",
        f"- Peak memory in use on the machine while the cluster started and ran it: {memory.peak:,} MiB.",
    ]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
