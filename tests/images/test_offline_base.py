"""The offline base image (scripts/offline-base-image.sh): contents, trust store, idempotence."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.images.conftest import HOST_CA_BUNDLE, OFFLINE_BASE_SCRIPT

pytestmark = pytest.mark.images


def in_base(base: str, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", base, "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def offline_base(base_image: str) -> str:
    if os.environ.get("IMAGES_BASE_IMAGE"):
        pytest.skip(f"IMAGES_BASE_IMAGE={base_image}: the offline base is not what this session builds on")
    return base_image


def test_script_prints_only_the_image_name_and_skips_an_existing_image(offline_base: str) -> None:
    proc = subprocess.run(["bash", str(OFFLINE_BASE_SCRIPT)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{offline_base}\n"
    assert "nothing to do" in proc.stderr or "keeping it (--force rebuilds)" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ca-bundle", "/nonexistent/ca.pem"], "--ca-bundle /nonexistent/ca.pem: file not readable"),
        (["--ca-bundle", "NOT_PEM"], "no PEM certificate in it"),
        (["--bogus"], "unknown argument: --bogus"),
    ],
)
def test_script_rejects_bad_arguments_before_doing_anything(
    docker: str, args: list[str], message: str, tmp_path: Path
) -> None:
    not_pem = tmp_path / "not-a-ca.txt"
    not_pem.write_text("just text\n")
    args = [str(not_pem) if a == "NOT_PEM" else a for a in args]
    proc = subprocess.run(["bash", str(OFFLINE_BASE_SCRIPT), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and message in proc.stderr
    assert proc.stdout == ""


def test_base_has_python_311_venv_and_no_package_caches(offline_base: str) -> None:
    proc = in_base(
        offline_base,
        "python --version; python3 -m venv /tmp/v && /tmp/v/bin/python -m pip --version; "
        "ls /var/lib/apt/lists | wc -l; ls /usr/share/man | wc -l; "
        "find /usr/share/doc -type f ! -name copyright | wc -l; "
        "find /usr/share/doc -name copyright | wc -l",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Python 3.11.")
    assert lines[1].startswith("pip ")
    assert lines[2:5] == ["0", "0", "0"]  # no apt lists, no man pages, no docs but the licences
    assert int(lines[5]) > 50  # copyright files of the installed packages are kept


def test_base_trusts_the_build_host_ca_in_the_system_store_and_pip(offline_base: str) -> None:
    labels = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            "--format",
            '{{ index .Config.Labels "io.cybersec-mlops.base.recipe" }}',
            offline_base,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    proc = in_base(
        offline_base,
        "cat /etc/pip.conf; ls /usr/local/share/ca-certificates; "
        "grep -c 'BEGIN CERTIFICATE' /etc/ssl/certs/ca-certificates.crt",
    )
    assert proc.returncode == 0, proc.stderr
    assert "cert = /etc/ssl/certs/ca-certificates.crt" in proc.stdout
    if not HOST_CA_BUNDLE.exists():
        assert "ca-sha256=none" in labels
        return
    host_sha = hashlib.sha256(Path(HOST_CA_BUNDLE).read_bytes()).hexdigest()
    if f"ca-sha256={host_sha}" not in labels:
        pytest.fail(
            f"{offline_base} was built with another CA bundle ({labels}); rebuild it: "
            f"sudo {OFFLINE_BASE_SCRIPT} --force --ca-bundle {HOST_CA_BUNDLE}"
        )
    assert "build-host-ca.crt" in proc.stdout
    assert int(proc.stdout.split()[-1]) >= HOST_CA_BUNDLE.read_text().count("BEGIN CERTIFICATE")
