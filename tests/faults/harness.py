"""Run a stage as a real process while a test injects faults, and read back what it left.

``StageRun`` streams the stage's stderr (JSON log lines) as they arrive so a test can act
at the right moment — recover a service once the stage has logged its first retry, drop
connections once the audit start row exists, send SIGTERM once progress is logged —
instead of sleeping and hoping. The audit and bucket helpers read the real services
directly (never through a fault proxy).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import REPO

__all__ = [
    "FAST_RETRIES",
    "base_env",
    "StageRun",
    "Finished",
    "attempts",
    "artifacts",
    "keys",
    "s3_client",
    "wait_until",
]

FAST_RETRIES = {
    # Our own knobs: audit attempts (0.5 s, 1 s, ... backoff), botocore attempts, attempts per MLflow call.
    "PG_RETRIES": "3",
    "MINIO_MAX_ATTEMPTS": "3",
    "MLFLOW_RETRIES": "2",
    # MLflow's HTTP client: no inner retry loop on top of the stage's, short timeouts.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}
"""Environment that keeps retry loops short so a fault that outlasts them ends in seconds."""


def base_env() -> dict[str, str]:
    """This process's environment without any service setting (no audit, S3 or MLflow), repo on PYTHONPATH."""
    drop = ("PG_", "MINIO_", "MLFLOW_", "RUN_ID", "STAGE_ATTEMPT", "AWS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONPATH"] = str(REPO)
    return env


@dataclass
class Finished:
    """A completed stage process."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def messages(self) -> list[str]:
        """The ``msg`` of every JSON log line on stderr (other lines verbatim)."""
        out = []
        for line in self.stderr.splitlines():
            try:
                out.append(str(json.loads(line).get("msg", line)))
            except (json.JSONDecodeError, AttributeError):
                out.append(line)
        return out

    def error(self) -> str:
        """The last error-level log message (what the stage says went wrong)."""
        errors = []
        for line in self.stderr.splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and entry.get("level") == "error":
                errors.append(str(entry.get("msg")))
        return errors[-1] if errors else ""


class StageRun:
    """``python -m stages.<stage> args`` started now; ``when()`` hooks fire on stderr lines."""

    def __init__(self, stage: str, *args: str, env: dict[str, str], cwd: Path | None = None) -> None:
        self._hooks: list[tuple[str, Callable[[], Any]]] = []
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"stages.{stage}", *args],
            env=env,
            cwd=cwd or REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._stdout: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=lambda: self._stdout.append(self.proc.stdout.read()), daemon=True),  # type: ignore[union-attr]
        ]
        for t in self._readers:
            t.start()

    def when(self, text: str, fn: Callable[[], Any]) -> StageRun:
        """Call ``fn`` (once, from the reader thread) when a stderr line containing ``text`` arrives."""
        with self._cond:
            if any(text in line for line in self._lines):
                fn()
            else:
                self._hooks.append((text, fn))
        return self

    def wait_for(self, text: str, timeout: float = 60) -> bool:
        """Block until a stderr line contains ``text`` (True) or the process ends / time runs out (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(text in line for line in self._lines):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._readers[0].is_alive()):
                    return False
                self._cond.wait(min(remaining, 0.1))
        return True

    def finish(self, timeout: float = 120) -> Finished:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        for t in self._readers:
            t.join(timeout=10)
        return Finished(
            self.proc.returncode, "".join(self._stdout), "".join(self._lines), time.monotonic() - self.started
        )

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self._lines.append(line)
                fire = [(t, fn) for t, fn in self._hooks if t in line]
                self._hooks = [(t, fn) for t, fn in self._hooks if t not in line]
                self._cond.notify_all()
            for _, fn in fire:
                fn()


def run(stage: str, *args: str, env: dict[str, str], timeout: float = 120) -> Finished:
    """Run a stage to completion (no hooks)."""
    return StageRun(stage, *args, env=env).finish(timeout)


def wait_until(check: Callable[[], Any], timeout: float = 30, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; that value, or AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


def attempts(conn: Any, run_id: str, stage: str) -> list[tuple[int, str, int | None, str | None]]:
    """(attempt, status, exit_code, error) of every audit row of one run and stage, by attempt."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT attempt, status, exit_code, error FROM stage_attempts WHERE run_id = %s AND stage = %s "
            "ORDER BY attempt",
            (run_id, stage),
        )
        return [tuple(r) for r in cur.fetchall()]


def artifacts(conn: Any, run_id: str, stage: str) -> list[tuple[int, str, str, str | None, int | None]]:
    """(attempt, direction, name, sha256, rows) of every recorded artifact of one run and stage."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT attempt, direction, name, sha256, rows FROM stage_artifacts WHERE run_id = %s AND stage = %s "
            "ORDER BY attempt, direction, name",
            (run_id, stage),
        )
        return [tuple(r) for r in cur.fetchall()]


def s3_client(s3_env: dict[str, str]) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3_env["MINIO_ENDPOINT"],
        aws_access_key_id=s3_env["MINIO_ACCESS_KEY"],
        aws_secret_access_key=s3_env["MINIO_SECRET_KEY"],
        region_name="us-east-1",
    )


def keys(s3_env: dict[str, str], prefix: str, bucket: str = "cybersec-mlops") -> dict[str, int]:
    """Every object under ``prefix`` in the real (unproxied) bucket: key → size in bytes."""
    found: dict[str, int] = {}
    for page in s3_client(s3_env).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return found
