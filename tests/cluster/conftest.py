"""The ``cluster`` tier: a real single-node Kubernetes with Argo Workflows and MinIO, built
from their published sources by scripts/cluster (cached outside the repository), the
pipeline installed with ``kubectl apply -k k8s/`` and run by the Job.

The tier needs root (kubelet, containerd, the pod bridge), the Go toolchain and dockerd.
When it cannot run, every test says NOT RUN with the reason — a skip with a banner on a
developer machine, a failure in CI (``CI=true``). ``CLUSTER_KEEP=1`` leaves a cluster the
tier started running afterwards (for a look with kubectl and argo).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.cluster import kube

# The images tier's fixture that starts dockerd when needed; the cluster builds images too.
from tests.images.conftest import docker, in_ci  # noqa: F401

_not_run: list[str] = []


def not_run(reason: str) -> None:
    if in_ci():
        pytest.fail(f"cluster tier cannot run in CI: {reason}", pytrace=False)
    if reason not in _not_run:
        _not_run.append(reason)
    pytest.skip(f"cluster tier NOT RUN: {reason}")


def _cluster_up() -> bool:
    probe = (
        subprocess.run(
            [f"{kube.settings()['K8S_BIN']}/kubectl", "get", "--raw", "/readyz"],
            capture_output=True,
            env=kube.env(),
            timeout=30,
            check=False,
        )
        if os.path.exists(f"{kube.settings()['K8S_BIN']}/kubectl")
        else None
    )
    return probe is not None and probe.returncode == 0


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """A running cluster with the add-ons; started (and built, the first time) when needed."""
    request.getfixturevalue("docker")
    if os.geteuid() != 0:
        not_run("needs root (kubelet, containerd and the pod bridge); run `sudo make cluster-up` first")
    if shutil.which("go") is None:
        not_run("the Go toolchain is missing (it builds Kubernetes, Argo and MinIO from their modules)")
    started = False
    if not _cluster_up():
        log = os.path.join(kube.settings()["CLUSTER_CACHE"], "up.log")
        with open(log, "w") as fh:
            proc = subprocess.run([str(kube.SCRIPTS / "up.sh")], stdout=fh, stderr=subprocess.STDOUT, timeout=3600)
        if proc.returncode != 0:
            with open(log) as fh:
                pytest.fail(
                    f"scripts/cluster/up.sh failed (exit {proc.returncode}):\n{fh.read()[-4000:]}", pytrace=False
                )
        started = True
    else:
        # A running cluster may predate a code change: refresh the images and host services.
        subprocess.run([str(kube.SCRIPTS / "images.sh"), "build"], check=True, timeout=3600)
        subprocess.run([str(kube.SCRIPTS / "images.sh"), "import"], check=True, timeout=600)
    yield kube.settings()
    if started and not os.environ.get("CLUSTER_KEEP"):
        subprocess.run([str(kube.SCRIPTS / "down.sh")], check=False, timeout=300)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for reason in _not_run:
        terminalreporter.write_sep("!", f"cluster tier NOT RUN: {reason}", red=True, bold=True)
