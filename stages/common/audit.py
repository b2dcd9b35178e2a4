"""PostgreSQL audit and lineage of every run and stage attempt.

The schema is created and migrated by this module (``MIGRATIONS``, applied in order
under an advisory lock). One row per (run_id, stage, attempt) is upserted at start and
finish, so re-running the same attempt overwrites it; a partial unique index allows
only one SUCCEEDED attempt per run and stage (an earlier success becomes SUPERSEDED).
All SQL is parameterised.
"""

from __future__ import annotations

import json
import logging
import socket
from dataclasses import dataclass
from typing import Any

from .config import Settings
from .errors import TransientError
from .retry import retry

__all__ = ["Artifact", "Audit", "NullAudit", "open_audit", "MIGRATIONS"]

log = logging.getLogger(__name__)

MIGRATIONS: list[str] = [
    # 1: runs, stage attempts, artifacts, lineage view
    """
    CREATE TABLE pipeline_runs (
        run_id      text PRIMARY KEY,
        created_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE stage_attempts (
        run_id      text NOT NULL REFERENCES pipeline_runs(run_id) ON DELETE CASCADE,
        stage       text NOT NULL,
        attempt     integer NOT NULL,
        status      text NOT NULL CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'SUPERSEDED')),
        started_at  timestamptz NOT NULL,
        finished_at timestamptz,
        exit_code   integer,
        params      jsonb NOT NULL DEFAULT '{}',
        metrics     jsonb NOT NULL DEFAULT '{}',
        error       text,
        host        text,
        PRIMARY KEY (run_id, stage, attempt)
    );
    CREATE UNIQUE INDEX stage_attempts_one_success
        ON stage_attempts (run_id, stage) WHERE status = 'SUCCEEDED';
    CREATE TABLE stage_artifacts (
        run_id      text NOT NULL,
        stage       text NOT NULL,
        attempt     integer NOT NULL,
        direction   text NOT NULL CHECK (direction IN ('input', 'output')),
        name        text NOT NULL,
        uri         text NOT NULL,
        sha256      text,
        rows        bigint,
        bytes       bigint,
        PRIMARY KEY (run_id, stage, attempt, direction, name),
        FOREIGN KEY (run_id, stage, attempt)
            REFERENCES stage_attempts (run_id, stage, attempt) ON DELETE CASCADE
    );
    CREATE INDEX stage_artifacts_sha256 ON stage_artifacts (sha256);
    CREATE VIEW lineage AS
        SELECT o.run_id, o.stage AS producer, o.name AS output, i.stage AS consumer,
               i.name AS input, o.uri, o.sha256
        FROM stage_artifacts o
        JOIN stage_attempts so ON (so.run_id, so.stage, so.attempt) = (o.run_id, o.stage, o.attempt)
        JOIN stage_artifacts i ON i.sha256 = o.sha256 AND i.direction = 'input'
        JOIN stage_attempts si ON (si.run_id, si.stage, si.attempt) = (i.run_id, i.stage, i.attempt)
        WHERE o.direction = 'output' AND so.status = 'SUCCEEDED' AND si.status = 'SUCCEEDED';
    """,
    # 2: the scoring stage's alerts and incidents, keyed by run (a re-run replaces its rows)
    """
    CREATE TABLE incidents (
        run_id       text NOT NULL,
        incident_id  text NOT NULL,
        severity     text NOT NULL CHECK (severity IN ('high', 'medium', 'low')),
        kind         text NOT NULL,
        first_seen   timestamptz,
        last_seen    timestamptz,
        alerts       integer NOT NULL,
        sources      integer NOT NULL,
        destinations integer NOT NULL,
        ports        integer NOT NULL,
        top_score    double precision NOT NULL,
        summary      text NOT NULL,
        PRIMARY KEY (run_id, incident_id)
    );
    CREATE TABLE alerts (
        run_id       text NOT NULL,
        alert_no     integer NOT NULL,
        incident_id  text NOT NULL,
        ts           timestamptz,
        uid          text,
        src_ip       text,
        dst_ip       text,
        dst_port     integer,
        proto        text,
        score        double precision NOT NULL,
        top_features jsonb NOT NULL DEFAULT '[]',
        PRIMARY KEY (run_id, alert_no),
        FOREIGN KEY (run_id, incident_id) REFERENCES incidents (run_id, incident_id) ON DELETE CASCADE
    );
    CREATE INDEX alerts_src_ts ON alerts (src_ip, ts);
    CREATE INDEX incidents_first_seen ON incidents (first_seen);
    """,
]


@dataclass(frozen=True)
class Artifact:
    """One input or output of a stage attempt, as recorded in ``stage_artifacts``."""

    direction: str  # "input" | "output"
    name: str
    uri: str
    sha256: str | None = None
    rows: int | None = None
    bytes: int | None = None


class NullAudit:
    """Used when PG_HOST is unset (debugging one stage by hand): records nothing."""

    enabled = False

    def start(self, stage: str, attempt: int, params: dict[str, Any]) -> None:
        log.warning("audit disabled: PG_HOST is not set, this attempt is not recorded")

    def finish(
        self, status: str, exit_code: int, metrics: dict[str, Any], artifacts: list[Artifact], error: str | None
    ) -> None:
        pass

    def close(self) -> None:
        pass


class Audit:
    """Audit rows for one stage attempt of one run."""

    enabled = True

    def __init__(self, settings: Settings, retries: int = 5) -> None:
        self.settings = settings
        self.retries = retries
        self.run_id = settings.run_id
        self._conn: Any = None
        self.stage = ""
        self.attempt = 0

    # -- connection -----------------------------------------------------------------
    def _connect(self) -> Any:
        import psycopg2

        s = self.settings
        return psycopg2.connect(
            host=s.pg_host,
            port=s.pg_port,
            user=s.pg_user,
            password=s.pg_password,
            dbname=s.pg_database,
            connect_timeout=5,
            application_name="cybersec-mlops",
            # a network cut after connecting must fail fast (and be retried), not hang for minutes
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
            tcp_user_timeout=30000,
        )

    def _execute(self, what: str, fn: Any) -> None:
        """Run ``fn(cursor)`` in one transaction, reconnecting and retrying on transient faults."""
        import psycopg2

        def attempt() -> None:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            try:
                with self._conn, self._conn.cursor() as cur:
                    fn(cur)
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self._drop()
                raise

        s = self.settings
        try:
            retry(
                attempt,
                transient=(psycopg2.OperationalError, psycopg2.InterfaceError),
                what=f"audit {what}",
                attempts=self.retries,
            )
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TransientError(
                f"PostgreSQL audit at {s.pg_host}:{s.pg_port}/{s.pg_database} unavailable after "
                f"{self.retries} attempts ({first_line}); check PG_HOST, PG_PORT, PG_USER, PG_PASSWORD, PG_DATABASE"
            ) from exc

    def transaction(self, what: str, fn: Any) -> None:
        """Run ``fn(cursor)`` in one transaction with the audit's retries (stages' own tables)."""
        self._execute(what, fn)

    def _drop(self) -> None:
        try:
            if self._conn is not None:
                self._conn.close()
        except Exception:  # noqa: BLE001 - the connection is already broken
            pass
        self._conn = None

    def migrate(self) -> None:
        def run(cur: Any) -> None:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (0x6D6C6F7073,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT coalesce(max(version), 0) FROM schema_version")
            current = cur.fetchone()[0]
            for version, sql in enumerate(MIGRATIONS, start=1):
                if version > current:
                    cur.execute(sql)
                    cur.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
                    log.info("audit schema migrated to version %d", version)

        self._execute("migrate", run)

    # -- attempt rows -----------------------------------------------------------------
    def start(self, stage: str, attempt: int, params: dict[str, Any]) -> None:
        self.stage, self.attempt = stage, attempt

        def run(cur: Any) -> None:
            cur.execute(
                "INSERT INTO pipeline_runs (run_id) VALUES (%s) ON CONFLICT (run_id) DO UPDATE SET updated_at = now()",
                (self.run_id,),
            )
            cur.execute(
                "INSERT INTO stage_attempts (run_id, stage, attempt, status, started_at, params, host) "
                "VALUES (%s, %s, %s, 'RUNNING', now(), %s, %s) "
                "ON CONFLICT (run_id, stage, attempt) DO UPDATE SET status = 'RUNNING', "
                "started_at = now(), finished_at = NULL, exit_code = NULL, params = EXCLUDED.params, "
                "metrics = '{}', error = NULL, host = EXCLUDED.host",
                (self.run_id, stage, attempt, json.dumps(params, default=str), socket.gethostname()),
            )
            cur.execute(
                "DELETE FROM stage_artifacts WHERE run_id = %s AND stage = %s AND attempt = %s",
                (self.run_id, stage, attempt),
            )

        self._execute("start", run)

    def finish(
        self, status: str, exit_code: int, metrics: dict[str, Any], artifacts: list[Artifact], error: str | None
    ) -> None:
        def run(cur: Any) -> None:
            if status == "SUCCEEDED":
                cur.execute(
                    "UPDATE stage_attempts SET status = 'SUPERSEDED' WHERE run_id = %s AND stage = %s "
                    "AND attempt <> %s AND status = 'SUCCEEDED'",
                    (self.run_id, self.stage, self.attempt),
                )
            cur.execute(
                "UPDATE stage_attempts SET status = %s, finished_at = now(), exit_code = %s, metrics = %s, "
                "error = %s WHERE run_id = %s AND stage = %s AND attempt = %s",
                (status, exit_code, json.dumps(metrics, default=str), error, self.run_id, self.stage, self.attempt),
            )
            for a in artifacts:
                cur.execute(
                    "INSERT INTO stage_artifacts (run_id, stage, attempt, direction, name, uri, sha256, rows, bytes) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (run_id, stage, attempt, direction, name) DO UPDATE SET uri = EXCLUDED.uri, "
                    "sha256 = EXCLUDED.sha256, rows = EXCLUDED.rows, bytes = EXCLUDED.bytes",
                    (self.run_id, self.stage, self.attempt, a.direction, a.name, a.uri, a.sha256, a.rows, a.bytes),
                )
            cur.execute("UPDATE pipeline_runs SET updated_at = now() WHERE run_id = %s", (self.run_id,))

        self._execute("finish", run)

    def close(self) -> None:
        self._drop()


def open_audit(settings: Settings) -> Audit | NullAudit:
    """Connect and migrate (with retries), or a NullAudit when PG_HOST is unset."""
    if not settings.pg_host:
        return NullAudit()
    audit = Audit(settings, retries=settings.pg_retries)
    audit.migrate()
    return audit
