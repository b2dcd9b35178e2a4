"""Structured logging: one line per event tagged with stage and run id.

JSON lines when stderr is not a terminal (Argo, CI, log shippers); readable text on a TTY.
Configured once by the stage's ``main()``; library code only calls ``logging.getLogger``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["configure"]

# LogRecord attributes that are not user-supplied "extra" fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class _JsonFormatter(logging.Formatter):
    def __init__(self, stage: str, run_id: str) -> None:
        super().__init__()
        self.stage, self.run_id = stage, run_id

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "stage": self.stage,
            "run_id": self.run_id,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _TextFormatter(logging.Formatter):
    def __init__(self, stage: str, run_id: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)-7s {stage}[{run_id}] %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        return line + ("  " + " ".join(f"{k}={v}" for k, v in extra.items()) if extra else "")


def configure(stage: str, run_id: str, level: str = "INFO", fmt: str = "auto") -> None:
    """Send all logs to stderr in ``fmt`` (``auto``: JSON unless stderr is a TTY)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter(stage, run_id) if use_json else _TextFormatter(stage, run_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3", "mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
