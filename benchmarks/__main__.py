"""``python -m benchmarks [perf|detection|images|all|collect] [ARGS...]``.

Runs one benchmark (ARGS go to it) or ``all`` (perf and detection) with defaults. Each
writes its section to ``benchmarks/<name>/RESULTS.md``; ``collect`` (also run after every
benchmark) joins the sections into BENCHMARKS.md.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

SUITES = ("perf", "detection")  # images rebuilds everything with --no-cache: run it by name
SECTIONS = ("perf", "detection", "images", "scoring", "partitioned", "cluster")
NOTES = {"perf": ("BREAKDOWN.md",), "detection": ("CALIBRATION.md", "TREES.md"), "partitioned": ("SCALE.md",)}
"""Hand-written sections (profiles, before/after studies) collected after a benchmark's RESULTS.md."""
ROOT = Path(__file__).resolve().parent
USAGE = (
    "usage: python -m benchmarks [perf|detection|images|scoring|partitioned|all|collect] [ARGS...]"
    "   (python -m benchmarks.<name> --help for ARGS)"
)
HEADER = """# Benchmarks

Measured on this project's build machine (2 cores, 24 GiB, shared and noisy: compare the
ratios between peers of the same run more than absolute seconds). Each section states its
date, machine and command; `make bench` (= `python -m benchmarks all`) regenerates perf
and detection, `python -m benchmarks.images` the image figures, and
`python -m benchmarks collect` rebuilds this file from `benchmarks/*/RESULTS.md`.
"""


def collect() -> int:
    """Write BENCHMARKS.md from the sections the benchmarks left in benchmarks/<name>/RESULTS.md."""
    parts = [HEADER]
    for name in SECTIONS:
        for section in (ROOT / name / f for f in ("RESULTS.md", *NOTES.get(name, ()))):
            if not section.exists():
                continue
            text = section.read_text().strip()
            if text.startswith("# "):  # every section sits one level under the file's title
                text = "\n".join("#" + line if line.startswith("#") else line for line in text.splitlines())
            parts.append(text)
    (ROOT.parent / "BENCHMARKS.md").write_text("\n\n".join(parts) + "\n")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "collect":
        return collect()
    if name == "all":
        if rest:
            print("`all` runs every benchmark with its defaults and takes no ARGS", file=sys.stderr)
            return 2
        code = max(importlib.import_module(f"benchmarks.{s}.__main__").main([]) for s in SUITES)
        return max(code, collect())
    if name not in SECTIONS:
        print(f"unknown benchmark {name!r}\n{USAGE}", file=sys.stderr)
        return 2
    code = int(importlib.import_module(f"benchmarks.{name}.__main__").main(rest))
    return max(code, collect())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
