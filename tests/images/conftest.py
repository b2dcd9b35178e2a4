"""Fixtures of the ``images`` tier: dockerd, the offline base image, and every bake target built.

The tier needs a docker daemon. When it cannot get one (no CLI, daemon down and not
startable here), every docker test is reported as NOT RUN with the reason — skipped with a
banner in the terminal summary on a developer machine, a failure in CI (``CI=true``).

Environment knobs:
  IMAGES_BASE_IMAGE   build on this BASE_IMAGE instead of the offline Debian base
                      (e.g. python:3.11-slim-bookworm where a registry is reachable)
  IMAGES_CA_BUNDLE    CA bundle baked into the offline base (default: the host's
                      /etc/ssl/certs/ca-certificates.crt, so pip works behind a re-signing proxy)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.images.bake import BakeTarget, build_command, resolve_bake

REPO = Path(__file__).resolve().parents[2]
BAKE_FILE = REPO / "docker-bake.hcl"
OFFLINE_BASE_SCRIPT = REPO / "scripts" / "offline-base-image.sh"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

_not_run: list[str] = []
_built: list[BuiltImage] = []


@dataclass(frozen=True)
class BuiltImage:
    """An image this session built from a bake target."""

    target: BakeTarget
    tag: str
    seconds: float
    size_bytes: int


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def not_run(reason: str) -> None:
    """Fail in CI; elsewhere skip and remember the reason for the terminal banner."""
    if in_ci():
        pytest.fail(f"images tier cannot run in CI: {reason}", pytrace=False)
    if reason not in _not_run:
        _not_run.append(reason)
    pytest.skip(f"images tier NOT RUN: {reason}")


def _docker_ok() -> str | None:
    """None when ``docker info`` works, else why not."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed (apt-get install docker.io)"
    try:
        probe = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if probe.returncode == 0:
        return None
    return f"the docker daemon is not reachable: {probe.stderr.strip()[:300]}"


@pytest.fixture(scope="session")
def docker() -> Iterator[str]:
    """A working docker daemon; starts ``dockerd`` when it is installed, stopped and we are root."""
    problem = _docker_ok()
    daemon: subprocess.Popen[bytes] | None = None
    if problem and shutil.which("dockerd") and shutil.which("docker") and os.geteuid() == 0:
        log = Path(tempfile.gettempdir()) / "images-tier-dockerd.log"
        with log.open("wb") as fh:
            daemon = subprocess.Popen(["dockerd"], stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(60):
            if (problem := _docker_ok()) is None or daemon.poll() is not None:
                break
            time.sleep(1)
        if problem:
            problem += f" (started dockerd, which did not come up; see {log})"
    if problem:
        not_run(problem)
    yield "docker"
    if daemon is not None:
        daemon.terminate()
        daemon.wait(timeout=60)


@pytest.fixture(scope="session")
def base_image(docker: str) -> str:
    """BASE_IMAGE for the builds: $IMAGES_BASE_IMAGE, else the offline base (built when missing)."""
    if os.environ.get("IMAGES_BASE_IMAGE"):
        return os.environ["IMAGES_BASE_IMAGE"]
    cmd = ["bash", str(OFFLINE_BASE_SCRIPT)]
    ca = Path(os.environ["IMAGES_CA_BUNDLE"]) if os.environ.get("IMAGES_CA_BUNDLE") else HOST_CA_BUNDLE
    if ca.exists():
        cmd += ["--ca-bundle", str(ca)]
    exists = subprocess.run(["docker", "image", "inspect", "cybersec-mlops-base:bookworm"], capture_output=True)
    if exists.returncode != 0 and os.geteuid() != 0:
        not_run(
            "the offline base image is missing and building it needs root: run "
            f"`sudo {' '.join(cmd[1:])}` once (or set IMAGES_BASE_IMAGE to a base you can pull)"
        )
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}", pytrace=False)
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def bake_targets() -> list[BakeTarget]:
    """The default group of docker-bake.hcl, resolved with its variable defaults."""
    return resolve_bake(BAKE_FILE)


@pytest.fixture(scope="session")
def images(docker: str, base_image: str) -> dict[str, BuiltImage]:
    """Every target of the default group, built with ``docker build --network host`` on ``base_image``."""
    built: dict[str, BuiltImage] = {}
    for target in resolve_bake(BAKE_FILE, overrides={"BASE_IMAGE": base_image}):
        cmd = build_command(target, REPO)
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
        seconds = time.monotonic() - started
        if proc.returncode != 0:
            log = (proc.stdout + proc.stderr)[-4000:]
            pytest.fail(
                f"building target {target.name!r} failed (exit {proc.returncode}):\n{' '.join(cmd)}\n{log}",
                pytrace=False,
            )
        size = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", target.tags[0]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        image = BuiltImage(target, target.tags[0], seconds, int(size))
        built[target.name] = image
        _built.append(image)
    return built


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _built:
        terminalreporter.section("images built (docker build --network host)")
        for image in _built:
            terminalreporter.write_line(f"{image.tag:<48} {image.size_bytes / 1e6:7.0f} MB  {image.seconds:6.1f} s")
    if _not_run:
        terminalreporter.section("IMAGES TIER NOT RUN", sep="!", red=True, bold=True)
        for reason in _not_run:
            terminalreporter.write_line(f"  {reason}", red=True, bold=True)
        terminalreporter.write_line(
            "  The container images were NOT built or tested. In CI (CI=true) this is a failure.", red=True, bold=True
        )
