"""No credential value in any tracked file (``git ls-files``), manifests included.

The rules are proven on planted examples first (built at run time, so this file does not
trip its own scan), then run on every tracked file. Test-only dummies are tolerated
only under tests/ and only when they read as dummies or are listed in ``TEST_DUMMIES``.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO
from tests.security.scanner import mask, scan_text, scan_yaml_docs

TEST_DUMMIES = frozenset({"s3cr3t", "s3cr3t-pw", "hunter2-secret", "pg-pass-123"})
"""Dummy credentials the test suites use on purpose (to prove they are never logged)."""

_AKIA = "AKIA" + "Q3EGUOD5XHZQ7ABC"
_PEM = "-----BEGIN " + "RSA PRIVATE KEY-----"
_GHP = "ghp" + "_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
_JWT = "eyJhbGciOiJSUzI1NiJ9" + ".eyJzdWIiOiJzeXN0ZW0ifQ" + ".c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.mark.parametrize(
    ("path", "line", "rule"),
    [
        ("stages/common/x.py", f'key = "{_AKIA}"', "aws-access-key-id"),
        ("k8s/x.yaml", _PEM, "private-key"),
        ("workflows/x.py", f"TOKEN = {_GHP!r}", "github-token"),
        ("workflows/x.py", f"headers = {{'Authorization': 'Bearer {_JWT}'}}", "jwt"),
        (
            "README.md",
            "mlflow server --backend-store-uri postgresql://mlflow:Pr0d" + "Pass@db:5432/m",
            "url-with-password",
        ),
        ("stages/x.py", 'password = "' + "correct-horse" + '"', "secret-assignment"),
        ("workflows/x.py", 'env = {"PG_PASSWORD": "' + "Winter2024" + '"}', "secret-assignment"),
        ("k8s/x.yaml", "  MINIO_SECRET_KEY: '" + "minio12345" + "'", "secret-assignment"),
        (".env", "MINIO_SECRET_KEY=" + "minio12345", "secret-env-line"),
        ("stages/x/Dockerfile", "ENV ARGO_TOKEN=" + "abc123def456", "secret-env-line"),
        ("k8s/x.yaml", "  PG_PASSWORD: '" + "password" + "'", "secret-assignment"),
        # a dummy-looking value outside tests/ is still a finding: dummies belong to tests only
        ("k8s/x.yaml", "  PG_PASSWORD: '" + "test-password" + "'", "secret-assignment"),
    ],
)
def test_planted_credentials_are_found(path: str, line: str, rule: str) -> None:
    assert [f.rule for f in scan_text(path, f"first line\n{line}\n")] == [rule]
    assert scan_text(path, f"first line\n{line}\n")[0].line == 2


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ("stages/common/audit.py", "password=s.pg_password,"),
        ("stages/common/config.py", 'pg_password=get("PG_PASSWORD"),'),
        ("k8s/x.yaml", "  - name: PG_PASSWORD\n    valueFrom: {secretKeyRef: {name: pg, key: password}}"),
        ("k8s/x.yaml", "url: postgresql://${PG_USER}:${PG_PASSWORD}@db:5432/audit"),
        ("workflows/x.yaml", "token: '{{inputs.parameters.token}}'"),
        ("workflows/pipeline.py", 'POSTGRES_SECRET = "cybersec-mlops-postgres"'),
        ("README.md", "export MINIO_SECRET_KEY=<your-key>"),
        ("README.md", "export PG_PASSWORD=$(kubectl get secret pg -o jsonpath='{.data.password}')"),
        ("tests/common/test_x.py", 'env = {"MINIO_SECRET_KEY": "test-secret-key"}'),
        ("tests/common/test_x.py", 'env = {"PG_PASSWORD": "s3cr3t-pw"}'),
        ("stages/x.py", 'p.add_argument("--token-file", help="path of the token")'),
        ("stages/x.py", "url = 'http://127.0.0.1:9000/bucket'"),
        ("stages/x.py", "# scheme://user:password@host"),
    ],
)
def test_placeholders_references_and_test_dummies_are_not_findings(path: str, line: str) -> None:
    assert scan_text(path, line, allow=TEST_DUMMIES) == []


@pytest.mark.parametrize(
    ("doc", "rule"),
    [
        ({"env": [{"name": "MINIO_SECRET_KEY", "value": "minio12345"}]}, "env-literal-secret"),
        ({"env": [{"name": "ARGO_TOKEN", "value": "abc"}]}, "env-literal-secret"),
        ({"kind": "Secret", "stringData": {"password": "pw-" + "in-git"}}, "secret-manifest-stringData"),
        ({"kind": "Secret", "data": {"accesskey": base64.b64encode(b"minio").decode()}}, "secret-manifest-data"),
    ],
)
def test_manifest_rules(doc: dict, rule: str) -> None:
    assert [f.rule for f in scan_yaml_docs("k8s/x.yaml", [doc])] == [rule]
    assert scan_yaml_docs("k8s/x.yaml", [{"env": [{"name": "MINIO_SECRET_KEY", "valueFrom": {}}]}]) == []


def test_a_finding_never_shows_the_whole_value() -> None:
    [finding] = scan_text("stages/x.py", 'password = "' + "correct-horse-battery" + '"')
    assert "correct-horse-battery" not in str(finding) and mask("correct-horse-battery") in str(finding)


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def test_no_tracked_file_holds_a_credential() -> None:
    files = _tracked()
    assert len(files) > 50 and "stages/common/config.py" in files  # really scanning the repository
    findings = []
    for path in files:
        full = REPO / path
        if not full.is_file():  # deleted in the working tree, not yet committed
            continue
        data = full.read_bytes()
        binary = b"\0" in data
        text = data.decode("latin-1") if binary else data.decode("utf-8", errors="replace")
        findings += scan_text(path, text, binary=binary, allow=TEST_DUMMIES)
        if Path(path).suffix in (".yaml", ".yml") and not binary:
            findings += scan_yaml_docs(path, [d for d in yaml.safe_load_all(text) if d is not None])
    assert findings == [], "credential values in tracked files:\n" + "\n".join(map(str, findings))
