"""The ingest readers under fuzzing: a short, bounded run in every test run, and every crash it found replayed.

With atheris installed (requirements-dev.txt) the run is coverage-guided (libFuzzer in a
subprocess, seeded with the fixture files); without it, hypothesis mutates the same
seeds. A finding is any exception other than InputError (exit 2): hostile data must
never end ingest with exit 1. Found crashes are kept in ``fuzz_crashes/``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

from .conftest import BADINPUT, FIXTURES
from .fuzz_readers import encode, run_one

CRASHES = Path(__file__).parent / "fuzz_crashes"
SECONDS = int(os.environ.get("INGEST_FUZZ_SECONDS", "20"))
# INGEST_FUZZ_ENGINE=hypothesis runs the fallback even where atheris is installed
ATHERIS = importlib.util.find_spec("atheris") is not None and os.environ.get("INGEST_FUZZ_ENGINE") != "hypothesis"
_FORMAT_OF = {".log": "zeek", ".labeled": "zeek", ".json": "zeek-json", ".csv": "csv"}


def _seeds() -> list[bytes]:
    files = [
        p for p in [*FIXTURES.iterdir(), *BADINPUT.iterdir()] if p.suffix in _FORMAT_OF and "mapping" not in p.name
    ]
    seeds = [encode(_FORMAT_OF[p.suffix], p.read_bytes()[:8192]) for p in sorted(files)]
    mapping = (FIXTURES / "custom-mapping.json").read_bytes()
    return [*seeds, encode("csv", (FIXTURES / "custom-flows.csv").read_bytes(), mapping=mapping)]


@pytest.mark.parametrize("crash", sorted(CRASHES.iterdir()), ids=lambda p: p.name)
def test_every_crash_found_stays_fixed(crash: Path, tmp_path: Path) -> None:
    run_one(crash.read_bytes(), tmp_path)


@pytest.mark.skipif(not ATHERIS, reason="atheris not installed (or not chosen); the hypothesis run stands in")
def test_coverage_guided_fuzzing_finds_no_crash(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(_seeds()):
        (corpus / f"seed-{i}").write_bytes(seed)
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).parent / "fuzz_readers.py"),
            f"-max_total_time={SECONDS}",
            "-max_len=8192",
            "-timeout=20",
            "-rss_limit_mb=3000",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
    )
    found = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert proc.returncode == 0 and not found, (
        f"{found}: copy each to tests/ingest/fuzz_crashes/ and fix it\n{proc.stderr[-4000:]}"
    )


@pytest.mark.skipif(ATHERIS, reason="atheris runs the coverage-guided fuzzer")
def test_mutated_inputs_find_no_crash(tmp_path: Path) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    seeds = _seeds()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(seeds), st.lists(st.tuples(st.integers(0, 8191), st.binary(max_size=8)), max_size=6))
    def check(seed: bytes, edits: list[tuple[int, bytes]]) -> None:
        data = bytearray(seed)
        for at, patch in edits:
            pos = 1 + at % max(len(data) - 1, 1)
            data[pos : pos + len(patch)] = patch
        run_one(bytes(data), tmp_path)

    check()
