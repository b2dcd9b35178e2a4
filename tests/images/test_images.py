"""Every bake target, built for real: help, non-root user, labels, contents, read-only root."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.images.conftest import REPO, BuiltImage

pytestmark = pytest.mark.images

# What each image's --help must mention (the stage CLI contract), and what it must not contain.
HELP = {
    "ingest": ["python -m stages.ingest", "--source", "--format", "--output", "--rejects", "--params-dir"],
    "silver": ["python -m stages.silver", "--input", "--output", "--manifest", "--holdout-fraction"],
    "train": ["python -m stages.train", "--features", "--manifest", "--model-out", "--card-out", "--model"],
    "eval": [
        "python -m stages.eval",
        "--features",
        "--model",
        "--card",
        "--metrics-out",
        "--report-out",
        "--gate-min-pr-auc",
        "--no-promote",
    ],
    "score": [
        "python -m stages.score",
        "--features",
        "--manifest",
        "--model-uri",
        "--alerts-out",
        "--incidents-out",
        "--html-out",
        "--drift-out",
        "--resolve-only",
    ],
    "submitter": ["python -m workflows", "submit"],
}
TARGETS = list(HELP)


def docker_run(
    image: str, *args: str, options: tuple[str, ...] = (), timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "run", "--rm", *options, image, *args], capture_output=True, text=True, timeout=timeout
    )


def inspect(image: str) -> dict:
    out = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


def test_help_table_covers_the_bake_group(images: dict[str, BuiltImage]) -> None:
    assert sorted(images) == sorted(HELP)


@pytest.mark.parametrize("name", TARGETS)
def test_help_prints_the_stage_flags_on_a_read_only_root(name: str, images: dict[str, BuiltImage]) -> None:
    proc = docker_run(images[name].tag, "--help", options=("--read-only", "--tmpfs", "/tmp", "--network", "none"))
    assert proc.returncode == 0, proc.stderr
    for flag in HELP[name]:
        assert flag in proc.stdout, f"{name} --help lacks {flag!r}:\n{proc.stdout}"


@pytest.mark.parametrize("name", TARGETS)
def test_without_arguments_the_image_prints_its_usage(name: str, images: dict[str, BuiltImage]) -> None:
    proc = docker_run(images[name].tag, options=("--network", "none"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: " + HELP[name][0])


@pytest.mark.parametrize("name", TARGETS)
def test_runs_as_the_unprivileged_user(name: str, images: dict[str, BuiltImage]) -> None:
    config = inspect(images[name].tag)["Config"]
    assert config["User"] == "10001:10001"
    proc = docker_run(
        images[name].tag,
        "-c",
        "import os; print(os.getuid(), os.getgid(), os.environ['HOME'])",
        options=("--entrypoint", "python", "--network", "none"),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["10001", "10001", "/tmp"]
    proc = docker_run(images[name].tag, "-u", options=("--entrypoint", "id", "--network", "none"))
    assert proc.stdout.strip() == "10001"


@pytest.mark.parametrize("name", TARGETS)
def test_entrypoint_workdir_and_labels_follow_the_argo_conventions(name: str, images: dict[str, BuiltImage]) -> None:
    image = images[name]
    config = inspect(image.tag)["Config"]
    module = "workflows" if name == "submitter" else f"stages.{name}"
    assert config["Entrypoint"] == ["python", "-m", module]
    assert config["WorkingDir"] == "/app"
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["PYTHONPATH"] == "/app" and env["PYTHONDONTWRITEBYTECODE"] == "1" and env["HOME"] == "/tmp"
    assert env["PATH"].startswith("/opt/venv/bin:")
    if name != "submitter":  # the stages' images carry MLflow's client (or may): no usage telemetry out
        assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == f"cybersec-mlops-{name}"
    assert labels["org.opencontainers.image.version"] == image.target.args["VERSION"] == image.tag.rsplit(":", 1)[1]
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["org.opencontainers.image.description"]


@pytest.mark.parametrize("name", TARGETS)
def test_installs_exactly_its_lock_file_and_no_pip(name: str, images: dict[str, BuiltImage]) -> None:
    script = (
        "import importlib.metadata as m, json; "
        "print(json.dumps(sorted({d.metadata['Name'].lower().replace('_', '-'): d.version "
        "for d in m.distributions()}.items())))"
    )
    proc = docker_run(images[name].tag, "-c", script, options=("--entrypoint", "python", "--network", "none"))
    assert proc.returncode == 0, proc.stderr
    installed = dict(json.loads(proc.stdout))
    target = images[name].target  # a stage: its STAGE build argument; the submitter: its Dockerfile's folder
    lock = (
        REPO / "stages" / target.args["STAGE"] if "STAGE" in target.args else REPO / Path(target.dockerfile).parent
    ) / "requirements.txt"
    pinned = {}
    for line in lock.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            dist, version = line.split("==")
            pinned[dist.lower().replace("_", "-").replace(".", "-")] = version
    installed = {k.replace(".", "-"): v for k, v in installed.items()}
    assert installed == pinned
    assert "pip" not in installed and "mlflow" not in installed


@pytest.mark.parametrize("name", TARGETS)
def test_code_in_the_image_is_not_writable_by_the_user(name: str, images: dict[str, BuiltImage]) -> None:
    proc = docker_run(
        images[name].tag,
        "-c",
        "import os; print(os.access('/app', os.W_OK), os.access('/opt/venv', os.W_OK))",
        options=("--entrypoint", "python", "--network", "none"),
    )
    assert proc.stdout.split() == ["False", "False"], proc.stderr


def test_build_context_leaves_out_venv_git_tests_and_caches(docker: str, base_image: str, tmp_path: Path) -> None:
    """Send the real context (with .dockerignore) into a throwaway image and list what arrived."""
    tag = "cybersec-mlops-context-probe:test"
    dockerfile = f"FROM {base_image}\nCOPY . /ctx\n"
    build = subprocess.run(
        ["docker", "build", "--network", "none", "-q", "-t", tag, "-f", "-", str(REPO)],
        input=dockerfile,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    try:
        listing = docker_run(
            tag, "-c", "cd /ctx && find . -maxdepth 3 | sort", options=("--entrypoint", "sh", "--network", "none")
        ).stdout.split()
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
    top = {p.split("/")[1] for p in listing if p != "."}
    assert top <= {"stages", "workflows", "scripts", "docker-bake.hcl", "build"}, top
    assert {"stages", "workflows", "scripts"} <= top
    assert "./scripts/build-venv.sh" in listing and "./stages/common" in listing
    assert not [p for p in listing if "__pycache__" in p or p.endswith((".pyc", ".parquet"))]
