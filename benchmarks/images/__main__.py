"""``python -m benchmarks.images``: size and build time of every image of docker-bake.hcl.

Builds each target of the default group the way the images test tier does (``docker
build --network host`` on the offline base, no buildx), three times:

- cold: ``--no-cache`` — pip downloads and installs every wheel (network-bound);
- warm: the same build again — every layer cached;
- code change: a copy of the build context with one changed line in stages/common —
  only the COPY/compile layers are rebuilt, the virtualenv layer is reused.

Sizes: the uncompressed image (``docker image inspect``), the part above the shared base
image, and the gzip-compressed ``docker save`` size (roughly what a registry stores and a
node pulls). Prints one JSON line per image and writes benchmarks/.data/images-results.json;
benchmarks/images/RESULTS.md is written from it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
CONTEXT_PATHS = ("stages", "workflows", "scripts/build-venv.sh", "docker-bake.hcl", ".dockerignore")


def sh(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)  # type: ignore[call-overload]


def timed_build(cmd: list[str]) -> float:
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"build failed: {' '.join(cmd)}\n{(proc.stdout + proc.stderr)[-3000:]}")
    return round(time.monotonic() - started, 1)


def compressed_size(image: str) -> int:
    """Bytes of ``docker save IMAGE | gzip -6``, streamed (no temp file)."""
    proc = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    assert proc.stdout is not None

    class Counter:
        n = 0

        def write(self, data: bytes) -> int:
            self.n += len(data)
            return len(data)

        def flush(self) -> None:
            pass

    counter = Counter()
    with gzip.GzipFile(fileobj=counter, mode="wb", compresslevel=6) as gz:  # type: ignore[arg-type]
        shutil.copyfileobj(proc.stdout, gz, 1 << 20)
    proc.wait()
    return counter.n


def changed_context() -> Path:
    """A copy of the build context with a one-line change in stages/common (a typical code edit)."""
    ctx = Path(tempfile.mkdtemp(prefix="images-bench-ctx-"))
    for rel in CONTEXT_PATHS:
        src, dst = REPO / rel, ctx / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "compiled"))
        else:
            shutil.copy2(src, dst)
    with (ctx / "stages" / "common" / "__init__.py").open("a") as fh:
        fh.write("# benchmark: a changed line\n")
    return ctx


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(REPO))
    from tests.images.bake import build_command, resolve_bake

    parser = argparse.ArgumentParser(prog="python -m benchmarks.images", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-image", default=None, help="BASE_IMAGE to build on (default: build/reuse the offline base)"
    )
    parser.add_argument(
        "--rebuild-base",
        action="store_true",
        help="time scripts/offline-base-image.sh --force too (debootstrap from the mirror)",
    )
    parser.add_argument(
        "--ca-bundle",
        default="/etc/ssl/certs/ca-certificates.crt",
        help="CA bundle for the offline base (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    base_seconds = None
    base = args.base_image
    if base is None:
        cmd = ["bash", str(REPO / "scripts" / "offline-base-image.sh")]
        if Path(args.ca_bundle).exists():
            cmd += ["--ca-bundle", args.ca_bundle]
        if args.rebuild_base:
            cmd.append("--force")
        started = time.monotonic()
        base = sh(cmd).stdout.strip().splitlines()[-1]
        base_seconds = round(time.monotonic() - started, 1) if args.rebuild_base else None
    base_size = int(sh(["docker", "image", "inspect", "--format", "{{.Size}}", base]).stdout)

    targets = resolve_bake(REPO / "docker-bake.hcl", overrides={"BASE_IMAGE": base})
    ctx = changed_context()
    rows = []
    try:
        for target in targets:
            cmd = build_command(target, REPO)
            cold = timed_build([*cmd[:2], "--no-cache", *cmd[2:]])
            warm = timed_build(cmd)
            bench_tag = f"{target.tags[0]}-bench"
            change_cmd = [*cmd[:-1], str(ctx / target.context)]
            change_cmd[change_cmd.index("-f") + 1] = str(ctx / target.dockerfile)
            change_cmd[change_cmd.index("-t") + 1] = bench_tag
            changed = timed_build(change_cmd)
            subprocess.run(["docker", "rmi", bench_tag], capture_output=True)
            size = int(sh(["docker", "image", "inspect", "--format", "{{.Size}}", target.tags[0]]).stdout)
            rows.append(
                {
                    "target": target.name,
                    "image": target.tags[0],
                    "size_mb": round(size / 1e6),
                    "above_base_mb": round((size - base_size) / 1e6),
                    "compressed_mb": round(compressed_size(target.tags[0]) / 1e6),
                    "cold_s": cold,
                    "warm_s": warm,
                    "code_change_s": changed,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)

    machine = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "host": f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}",
        "docker": sh(["docker", "version", "--format", "{{.Server.Version}}"]).stdout.strip(),
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "base_image": base,
        "base_size_mb": round(base_size / 1e6),
        "base_build_s": base_seconds,
    }
    data_dir = REPO / "benchmarks" / ".data"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "images-results.json").write_text(
        json.dumps({"machine": machine, "images": rows}, indent=2, sort_keys=True) + "\n"
    )
    print(json.dumps(machine, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
