"""All configuration is read through ``Settings``: its table of variables, and no stage module reading the environment."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stages.common.config import Settings

STAGES = Path(__file__).resolve().parents[2] / "stages"

ENV_ALLOWED: dict[str, str] = {
    "common/config.py": "the one place that reads the environment",
    "common/mlflow_calls.py": "writes (never reads) MLflow's HTTP limits, which MLflow's client reads per request",
}
"""Stage modules allowed to touch ``os.environ``, and why."""


@pytest.mark.parametrize(
    ("env", "field", "value"),
    [
        ({}, "pg_retries", 5),
        ({"PG_RETRIES": "3"}, "pg_retries", 3),
        ({}, "mlflow_retries", 5),
        ({"MLFLOW_RETRIES": "2"}, "mlflow_retries", 2),
        ({}, "mlflow_http_max_retries", 2),
        ({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}, "mlflow_http_max_retries", 0),
        ({}, "mlflow_http_backoff_factor", 1.0),
        ({"MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0"}, "mlflow_http_backoff_factor", 0.0),
        ({}, "mlflow_http_timeout", 30.0),
        ({"MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}, "mlflow_http_timeout", 5.0),
        ({}, "stage_attempt", 0),
        ({"STAGE_ATTEMPT": "2"}, "stage_attempt", 2),
        ({"STAGE_ATTEMPT": " "}, "stage_attempt", 0),
        ({}, "mlflow_telemetry", False),
        ({"MLFLOW_DISABLE_TELEMETRY": "true"}, "mlflow_telemetry", False),
        ({"MLFLOW_DISABLE_TELEMETRY": "False"}, "mlflow_telemetry", True),
    ],
)
def test_settings_from_env(env: dict[str, str], field: str, value: Any) -> None:
    assert getattr(Settings.from_env(env), field) == value


@pytest.mark.parametrize("name", ["PG_RETRIES", "MLFLOW_RETRIES"])
@pytest.mark.parametrize("raw", ["0", "-1", "three"])
def test_attempt_counts_below_one_are_refused_by_name(name: str, raw: str) -> None:
    with pytest.raises(ValueError, match=rf"{name}='{raw}': expected a whole number of attempts, at least 1"):
        Settings.from_env({name: raw})


@pytest.mark.parametrize(
    ("name", "raw", "what"),
    [
        ("PG_PORT", "54x2", "a whole number"),
        ("MINIO_READ_TIMEOUT", "1m", "a number"),
        ("STAGE_ATTEMPT", "1.5", "a whole number"),
    ],
)
def test_a_malformed_number_is_refused_by_name(name: str, raw: str, what: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}='{raw}': expected {what}$"):
        Settings.from_env({name: raw})


def test_a_stage_with_a_malformed_setting_exits_2_naming_it() -> None:
    env = {**os.environ, "PG_HOST": "", "PG_PORT": "five"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.eval.part",
            "--features=f",
            "--manifest=m",
            "--model=x",
            "--card=c",
            "--output=o",
        ],
        cwd=STAGES.parent,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "python -m stages.eval.part: error: PG_PORT='five': expected a whole number"


def _env_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every ``os.environ``/``os.getenv``/``os.putenv`` use and every ``from os import environ``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            found.append((node.lineno, f"os.{node.attr}"))
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [(node.lineno, f"from os import {a.name}") for a in node.names if "env" in a.name]
    return found


def test_no_stage_module_reads_the_environment_outside_settings() -> None:
    offenders = []
    for path in sorted(STAGES.rglob("*.py")):
        rel = path.relative_to(STAGES).as_posix()
        if rel in ENV_ALLOWED:
            continue
        offenders += [f"stages/{rel}:{line}: {what}" for line, what in _env_uses(ast.parse(path.read_text()))]
    assert offenders == [], "read configuration through stages.common.config.Settings instead:\n" + "\n".join(offenders)


def test_the_mlflow_exception_only_writes_the_environment() -> None:
    tree = ast.parse((STAGES / "common" / "mlflow_calls.py").read_text())
    writes = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and isinstance(node.ctx, ast.Store)
        and ast.unparse(node.value) == "os.environ"
    ]
    assert len(writes) == len(_env_uses(tree)) == 3


def test_the_scan_sees_each_kind_of_read() -> None:
    src = "import os\nfrom os import environ\na = os.environ['X']\nb = os.getenv('Y')\nc = os.environ.get('Z')\n"
    assert [what for _, what in _env_uses(ast.parse(src))] == [
        "from os import environ",
        "os.environ",
        "os.getenv",
        "os.environ",
    ]
