"""The PostgreSQL audit on a real throwaway server."""

from __future__ import annotations

from typing import Any

import pytest

from stages.common.audit import Artifact, Audit, open_audit
from stages.common.config import Settings
from stages.common.errors import TransientError
from workflows.local.services import free_port


def _rows(conn: Any, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


def _audit(postgres: dict[str, str], run_id: str) -> Audit:
    audit = open_audit(Settings.from_env({**postgres, "RUN_ID": run_id}))
    assert isinstance(audit, Audit)
    return audit


def test_migrations_are_idempotent(postgres: dict[str, str], audit_db: Any) -> None:
    _audit(postgres, "mig-1").close()
    _audit(postgres, "mig-2").close()
    assert _rows(audit_db, "SELECT version FROM schema_version ORDER BY version") == [(1,), (2,)]


def test_rerun_of_same_attempt_upserts(postgres: dict[str, str], audit_db: Any) -> None:
    for rows in (10, 12):
        audit = _audit(postgres, "rerun")
        audit.start("ingest", 0, {"source": "synthetic://"})
        audit.finish(
            "SUCCEEDED",
            0,
            {"rows": rows},
            [Artifact("output", "flows", "/x/flows.parquet", "ab" * 32, rows, 1234)],
            None,
        )
        audit.close()
    assert _rows(
        audit_db, "SELECT stage, attempt, status, metrics->>'rows' FROM stage_attempts WHERE run_id = %s", "rerun"
    ) == [("ingest", 0, "SUCCEEDED", "12")]
    assert _rows(audit_db, "SELECT count(*), max(rows) FROM stage_artifacts WHERE run_id = %s", "rerun") == [(1, 12)]


def test_only_one_success_per_stage(postgres: dict[str, str], audit_db: Any) -> None:
    for attempt in (0, 1):
        audit = _audit(postgres, "two-attempts")
        audit.start("train", attempt, {})
        audit.finish("SUCCEEDED", 0, {}, [], None)
        audit.close()
    assert _rows(
        audit_db, "SELECT attempt, status FROM stage_attempts WHERE run_id = %s ORDER BY attempt", "two-attempts"
    ) == [(0, "SUPERSEDED"), (1, "SUCCEEDED")]


def test_failure_is_recorded_with_error(postgres: dict[str, str], audit_db: Any) -> None:
    audit = _audit(postgres, "failed")
    audit.start("eval", 0, {})
    audit.finish("FAILED", 3, {"pr_auc": 0.1}, [], "quality gate failed: pr_auc 0.1 < 0.3")
    assert _rows(audit_db, "SELECT status, exit_code, error FROM stage_attempts WHERE run_id = %s", "failed") == [
        ("FAILED", 3, "quality gate failed: pr_auc 0.1 < 0.3")
    ]


def test_lineage_view_links_producer_and_consumer(postgres: dict[str, str], audit_db: Any) -> None:
    sha = "cd" * 32
    for stage, direction in (("ingest", "output"), ("silver", "input")):
        audit = _audit(postgres, "lineage")
        audit.start(stage, 0, {})
        audit.finish("SUCCEEDED", 0, {}, [Artifact(direction, "flows", "/a/flows.parquet", sha, 5, 50)], None)
        audit.close()
    assert _rows(audit_db, "SELECT producer, consumer, sha256 FROM lineage WHERE run_id = %s", "lineage") == [
        ("ingest", "silver", sha)
    ]


def test_unreachable_database_is_transient_and_names_settings() -> None:
    settings = Settings.from_env({"PG_HOST": "127.0.0.1", "PG_PORT": str(free_port()), "PG_PASSWORD": "s3cr3t-pw"})
    audit = Audit(settings, retries=2)
    with pytest.raises(
        TransientError, match=r"PostgreSQL audit at 127\.0\.0\.1:\d+/mlops_audit unavailable.*PG_HOST"
    ) as err:
        audit.migrate()
    assert "s3cr3t-pw" not in str(err.value)


def test_without_pg_host_audit_is_disabled() -> None:
    assert open_audit(Settings.from_env({})).enabled is False
