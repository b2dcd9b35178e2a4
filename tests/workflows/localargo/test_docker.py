"""The docker runtime on a tiny busybox image: users, read-only roots, mounts, docker cp, retries.

Needs dockerd and a static busybox (Debian: ``apt-get install busybox-static``); without
them these tests fail with what to install — they are never skipped silently.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from workflows.local.project import bake_hint
from workflows.localargo.engine import RunOptions, run_workflow
from workflows.localargo.errors import RuntimeUnavailable
from workflows.localargo.runtimes.docker_runtime import DockerRuntime

FIXTURES = Path(__file__).parent / "fixtures"
IMAGE = "executor-test-busybox:1"
APPLETS = ("sh", "id", "cat", "echo", "touch", "mkdir", "tr", "test", "sleep")


@pytest.fixture(scope="module")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ~2 MB image made offline from the host's static busybox with ``docker import``."""
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail("the docker runtime tests need a running dockerd (.ci/run starts one)")
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.fail("the docker runtime tests need a static busybox: apt-get install busybox-static")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "tmp", "etc"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    subprocess.run(
        ["docker", "import", "--change", "ENV PATH=/bin", "-", IMAGE],
        input=buf.getvalue(),
        check=True,
        capture_output=True,
    )
    yield IMAGE
    subprocess.run(["docker", "image", "rm", "-f", IMAGE], capture_output=True)


def test_docker_runtime_follows_the_pod_spec(
    tmp_path: Path, busybox_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUN_LOCAL_BACKOFF_SCALE", "0")
    outcome = run_workflow(
        RunOptions(
            manifest=FIXTURES / "docker-runtime.yaml",
            runtime="docker",
            workdir=tmp_path / "runs",
            artifacts=str(tmp_path / "artifacts"),
            parameters={"image": busybox_image},
        ),
        out=io.StringIO(),
    )
    status = json.loads(outcome.status_path.read_text())
    t = {c["displayName"]: c for c in status["root"]["children"]}
    writer = t["writer"]
    assert writer["phase"] == "Succeeded", writer["message"]
    assert writer["outputs"]["parameters"] == {"uid": "10001"}
    assert Path(writer["log"]).read_text().strip() == "root is read-only"
    msg = (tmp_path / "artifacts" / "docker" / outcome.name / "msg.txt").read_text()
    assert msg == f"written by 10001:10001 in {writer['podName']}\n"
    reader = t["reader"]
    assert reader["phase"] == "Succeeded", reader["message"]
    assert (tmp_path / "artifacts" / "docker" / outcome.name / "shouted.txt").read_text() == msg.upper()
    assert t["read-only"]["phase"] == "Failed"  # no writable /tmp without a volume, as on the cluster
    assert [c["exitCode"] for c in t["transient"]["children"]] == [75, 0]
    assert outcome.phase == "Failed"  # because of read-only
    leftover = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"name={outcome.name}", "-q"], capture_output=True, text=True
    ).stdout.strip()
    assert leftover == ""  # every attempt's container was removed


def test_missing_image_names_the_build_command(busybox_image: str) -> None:
    with pytest.raises(
        RuntimeUnavailable,
        match=r"registry.local/cybersec-mlops-nothing:9.9.9.*"
        r"build with: docker buildx bake nothing",
    ):
        DockerRuntime(build_hint=bake_hint).check({busybox_image, "registry.local/cybersec-mlops-nothing:9.9.9"})


def test_missing_image_without_a_build_hint_gives_the_generic_advice(busybox_image: str) -> None:
    with pytest.raises(
        RuntimeUnavailable, match=r"registry.local/other:1 ?; build or load it \(docker build -t IMAGE \.\.\.\)"
    ):
        DockerRuntime().check({busybox_image, "registry.local/other:1"})
