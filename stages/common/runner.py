"""The one ``main()`` every stage shares: flags → logging → audit → body → exit code.

A stage supplies an argparse parser and a ``body(ctx)`` function. The runner adds the
common flags, configures logging, opens the audit attempt, runs the body, maps
exceptions to the exit codes of ``errors.ExitCode`` and records the outcome.

Outputs are staged as local temporary files and published together when the body has
finished (``StageContext.publish_outputs``): the stage's primary output last, and on any
failure the ones already published are removed again, so a reader that requires the
primary never sees a partial set.

SIGTERM sets a flag and raises ``Terminated`` in the body; because an exception raised
from a signal handler can be discarded (inside ``__del__``, a weakref callback, a broad
``except``), the flag is checked again before every publish and before success is
reported: a terminated stage never exits 0.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

from .audit import Artifact, Audit, NullAudit, open_audit
from .config import Settings, set_mlflow_telemetry
from .errors import ExitCode, InputError, StageError
from .logs import configure
from .storage import Storage, sha256_file

__all__ = ["StageContext", "OutputFile", "add_common_flags", "run_stage"]

log = logging.getLogger(__name__)


class Terminated(BaseException):
    """SIGTERM arrived (pod deleted, workflow stopped).

    A BaseException, so the ``except Exception`` of a library or of our own error
    mapping (e.g. "not a readable skops model") cannot turn it into something else.
    """


class _Signal:
    """The SIGTERM flag; ``raising`` is on only while the body runs."""

    received = False
    raising = False


def check_terminated() -> None:
    """Raise ``Terminated`` if SIGTERM arrived at any time (a safe point)."""
    if _Signal.received:
        raise Terminated("terminated by SIGTERM")


@dataclass
class OutputFile:
    """A temporary local file, staged as an output once the ``with`` block succeeds."""

    path: Path
    rows: int | None = None


@dataclass
class _Staged:
    path: Path
    artifact: Artifact
    primary: bool


@dataclass
class StageContext:
    """What a stage body gets: its flags, services, and places to record results."""

    stage: str
    args: argparse.Namespace
    settings: Settings
    storage: Storage
    params_dir: Path | None
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)
    staged: list[_Staged] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.settings.run_id

    def fetch_input(self, name: str, uri: str, rows: int | None = None) -> Path:
        """Fetch ``uri`` to a local file and record it as an input (sha256, bytes)."""
        path = self.storage.fetch(uri)
        self.record("input", name, uri, path, rows)
        return path

    @contextlib.contextmanager
    def output(self, name: str, uri: str, suffix: str = "", primary: bool = False) -> Iterator[OutputFile]:
        """Write to ``out.path`` inside the block; the file is staged, not yet visible at ``uri``.

        ``publish_outputs`` (called by the runner when the body returns, or by the body
        itself) publishes every staged output together, ``primary`` last.
        """
        taken = [a for a in (*self.artifacts, *(s.artifact for s in self.staged)) if a.direction == "output"]
        clash = next((a for a in taken if self.storage.same_place(a.uri, uri)), None)
        if clash is not None:
            raise InputError(f"{uri}: the {name} and {clash.name} outputs are the same file; give each its own")
        tmp = self.storage.staging(uri, suffix)
        try:
            out = OutputFile(tmp)
            yield out
            artifact = Artifact("output", name, uri, sha256_file(tmp), out.rows, tmp.stat().st_size)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.staged.append(_Staged(tmp, artifact, primary))

    def publish_outputs(self) -> None:
        """Publish all staged outputs as one set: all of them, or none.

        The primary output (the one the next stage opens first) is removed from its key
        first and published last, so it marks a complete set. If any publish fails, or
        SIGTERM arrives, the outputs already published are removed again (best effort).
        """
        order = sorted(self.staged, key=lambda s: s.primary)
        if not order:
            return
        done: list[_Staged] = []
        try:
            check_terminated()
            for s in order:
                if s.primary:
                    _remove(self.storage, s.artifact.uri)
            for s in order:
                check_terminated()
                self.storage.publish(s.path, s.artifact.uri)
                done.append(s)
            check_terminated()
        except BaseException:
            for s in reversed(done):
                _remove(self.storage, s.artifact.uri)
            raise
        finally:
            for s in order:
                s.path.unlink(missing_ok=True)
            self.staged.clear()
        self.artifacts.extend(s.artifact for s in order)
        log.info("published %s", ", ".join(s.artifact.uri for s in order))

    def record(self, direction: str, name: str, uri: str, path: Path, rows: int | None = None) -> Artifact:
        artifact = Artifact(direction, name, uri, sha256_file(path), rows, path.stat().st_size)
        self.artifacts.append(artifact)
        return artifact

    def sha256(self, name: str) -> str | None:
        """The sha256 of a recorded output, for output parameters."""
        outputs = [*self.artifacts, *(s.artifact for s in self.staged)]
        return next((a.sha256 for a in outputs if a.direction == "output" and a.name == name), None)

    def set_param(self, name: str, value: Any) -> None:
        """Write an Argo output parameter file (``<params-dir>/<name>``) atomically."""
        if self.params_dir is None:
            return
        self.params_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.params_dir, prefix=f".{name}.")
        with os.fdopen(fd, "w") as fh:
            fh.write(str(value))
        os.replace(tmp, self.params_dir / name)


def _remove(storage: Storage, uri: str) -> None:
    """Best effort: a key that cannot be deleted (no s3:DeleteObject, S3 down) is logged, not fatal."""
    try:
        storage.remove(uri)
    except Exception as exc:  # noqa: BLE001 - the publish (or its error) is what decides the outcome
        log.warning("could not remove %s: %s", uri, exc)


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("run and logging")
    g.add_argument("--run-id", default=None, help="pipeline run id (default: $RUN_ID, else 'local')")
    g.add_argument(
        "--attempt",
        type=int,
        default=None,
        help="attempt number for the audit (default: $STAGE_ATTEMPT, Argo's {{retries}}, else 0)",
    )
    g.add_argument(
        "--part",
        default=None,
        help="partition key of one pod of a fan-out, audited as '<stage>/part=<key>' so every partition keeps "
        "its own row (default: $STAGE_PART, else none)",
    )
    g.add_argument(
        "--params-dir",
        type=Path,
        default=None,
        help="write small results as files here for Argo output parameters (e.g. /tmp/outputs/params)",
    )
    g.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    g.add_argument(
        "--log-format", default="auto", choices=["auto", "json", "text"], help="auto: JSON unless stderr is a terminal"
    )


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _Signal.received = True
    if _Signal.raising:
        raise Terminated("terminated by SIGTERM")


def run_stage(
    stage: str,
    parser: argparse.ArgumentParser,
    body: Callable[[StageContext], None],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse flags, run ``body`` under the audit, return the process exit code."""
    add_common_flags(parser)
    args = parser.parse_args(argv)  # exits 2 with argparse's message on usage errors
    try:
        settings = Settings.from_env()
    except ValueError as exc:  # a malformed setting is bad input: name it, exit 2, no traceback
        parser.exit(int(ExitCode.BAD_INPUT), f"{parser.prog}: error: {exc}\n")
    if args.run_id:
        settings = replace(settings, run_id=args.run_id)
    set_mlflow_telemetry(settings)
    attempt = args.attempt if args.attempt is not None else settings.stage_attempt
    part = args.part if args.part is not None else settings.stage_part
    audited = f"{stage}/part={part}" if part else stage
    configure(stage, settings.run_id, args.log_level, args.log_format)
    _Signal.received, _Signal.raising = False, True
    previous = signal.signal(signal.SIGTERM, _on_sigterm)

    ctx = StageContext(stage, args, settings, Storage(settings), args.params_dir)
    audit: Audit | NullAudit = NullAudit()
    started = time.monotonic()
    code, status, error = ExitCode.OK, "SUCCEEDED", None
    try:
        audit = open_audit(settings)
        audit.start(audited, attempt, {k: v for k, v in vars(args).items() if v is not None})
        log.info("%s started", audited, extra={"attempt": attempt})
        body(ctx)
        ctx.publish_outputs()
        check_terminated()
    except Terminated as exc:
        code, status, error = ExitCode.UNEXPECTED, "FAILED", str(exc)
    except StageError as exc:
        code, status, error = exc.exit_code, "FAILED", str(exc)
        log.error("%s", exc, extra={"exit_code": int(code)})
    except Exception as exc:  # noqa: BLE001 - the runner is the one place that maps everything
        code, status, error = ExitCode.UNEXPECTED, "FAILED", f"{type(exc).__name__}: {exc}"
        log.exception("unexpected error")
    finally:
        _Signal.raising = False  # from here on SIGTERM is only recorded: cleanup and audit must finish
        for staged in ctx.staged:
            staged.path.unlink(missing_ok=True)
        ctx.storage.cleanup()
    if _Signal.received:  # whatever the body made of it (a swallowed or converted Terminated)
        code, status, error = ExitCode.UNEXPECTED, "FAILED", "terminated by SIGTERM"
        log.error("terminated by SIGTERM; temporary files removed, nothing published after this point")
    ctx.metrics.setdefault("wall_seconds", round(time.monotonic() - started, 3))
    try:
        audit.finish(status, int(code), ctx.metrics, ctx.artifacts, error)
    except StageError as exc:
        log.error("could not record the outcome in the audit: %s", exc)
        if code == ExitCode.OK:
            code = exc.exit_code
    finally:
        audit.close()
        signal.signal(signal.SIGTERM, previous)
    if _Signal.received:
        code, status = ExitCode.UNEXPECTED, "FAILED"
    log.info("%s %s", stage, status.lower(), extra={"exit_code": int(code), "seconds": ctx.metrics["wall_seconds"]})
    return int(code)


def main_exit(code: int) -> None:
    """End a stage process (``__main__`` modules) with ``code`` once ``run_stage`` has returned.

    By then the stage's work is complete and recorded: outputs published, audit row written,
    MLflow run ended. What is left is the interpreter's teardown — finalising sklearn, scipy
    and MLflow's thousands of module objects, ~1 s per ML stage — which nothing needs, so
    the process ends after the exit handlers (libraries' flushes, temporary directories) and
    with stdio flushed, skipping only that.
    """
    logging.shutdown()
    atexit._run_exitfuncs()  # what sys.exit would run; skipped by os._exit otherwise
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
