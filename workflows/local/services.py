"""Embedded services for local runs and tests: a throwaway real PostgreSQL, local MLflow.

PostgreSQL comes from Debian's binaries (``/usr/lib/postgresql/*/bin``) when present,
otherwise from the pip-installable ``pgserver``. It listens on 127.0.0.1 only, with
trust auth for the local user: a developer sandbox, never a deployment.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EmbeddedPostgres", "free_port", "mlflow_sqlite_uri"]

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mlflow_sqlite_uri(state_dir: Path) -> str:
    """A local MLflow tracking/registry store (sqlite); artifacts land beside it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(state_dir / 'mlflow.db').resolve()}"


def _debian_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server in ``data_dir`` on 127.0.0.1; ``start()`` reuses a running one."""

    data_dir: Path
    database: str = "mlops_audit"
    user: str = "postgres"
    port: int = 0

    @property
    def env(self) -> dict[str, str]:
        """The PG_* variables the stages read."""
        return {"PG_HOST": "127.0.0.1", "PG_PORT": str(self.port), "PG_USER": self.user, "PG_DATABASE": self.database}

    def _as_owner(self, cmd: list[str]) -> list[str]:
        # initdb refuses to run as root: run the server as the 'postgres' system user.
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *cmd]
        return cmd

    def start(self) -> EmbeddedPostgres:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port_file = self.data_dir / "port"
        if self._running() and port_file.exists():
            self.port = int(port_file.read_text())
            log.info("reusing PostgreSQL on 127.0.0.1:%d (%s)", self.port, self.data_dir)
            return self
        bindir = _debian_bin()
        if bindir is None:
            return self._start_pgserver()
        pgdata = self.data_dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres")
        if not (pgdata / "PG_VERSION").exists():
            subprocess.run(
                self._as_owner(
                    [
                        str(bindir / "initdb"),
                        "-D",
                        str(pgdata),
                        "-U",
                        self.user,
                        "--auth=trust",
                        "-E",
                        "UTF8",
                        "--no-sync",
                    ]
                ),
                check=True,
                capture_output=True,
            )
        self.port = self.port or free_port()
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} -c fsync=off"
        subprocess.run(
            self._as_owner(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(pgdata),
                    "-o",
                    opts,
                    "-l",
                    str(self.data_dir / "server.log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        port_file.write_text(str(self.port))
        self._create_database()
        return self

    def _start_pgserver(self) -> EmbeddedPostgres:
        import pgserver  # type: ignore[import-untyped]

        server = pgserver.get_server(str(self.data_dir / "pgserver"), cleanup_mode=None)
        self.port = self.port or free_port()
        # pgserver listens on a unix socket; ask it for TCP on 127.0.0.1 as the stages expect.
        server.psql(f"ALTER SYSTEM SET listen_addresses = '127.0.0.1'; ALTER SYSTEM SET port = {self.port};")
        server.cleanup()
        server = pgserver.get_server(str(self.data_dir / "pgserver"), cleanup_mode=None)
        (self.data_dir / "port").write_text(str(self.port))
        self._create_database()
        return self

    def is_running(self) -> bool:
        """True when a server started from ``data_dir`` is alive (its postmaster.pid names a live process)."""
        return self._running()

    def _running(self) -> bool:
        pidfile = self.data_dir / "data" / "postmaster.pid"
        if not pidfile.exists():
            return False
        try:
            os.kill(int(pidfile.read_text().splitlines()[0]), 0)
        except (OSError, ValueError):
            return False
        return True

    def _create_database(self) -> None:
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{self.database}"')  # identifier from our own config
        conn.close()

    def stop(self) -> None:
        bindir = _debian_bin()
        if bindir is not None and (self.data_dir / "data").exists():
            subprocess.run(
                self._as_owner([str(bindir / "pg_ctl"), "-D", str(self.data_dir / "data"), "-m", "fast", "-w", "stop"]),
                capture_output=True,
            )
