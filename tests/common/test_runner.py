"""The shared stage main(): exit codes, params files, audit outcome, SIGTERM cleanup."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from stages.common.errors import GateFailed, InputError, TransientError
from stages.common.runner import StageContext, run_stage
from tests.helpers import REPO


def _run(body: Any, argv: list[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str] | None = None) -> int:
    for key in ("PG_HOST", "RUN_ID", "MLFLOW_TRACKING_URI", "STAGE_ATTEMPT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    return run_stage("demo", argparse.ArgumentParser(prog="demo"), body, argv)


def _raise(exc: Exception) -> Any:
    def body(ctx: StageContext) -> None:
        raise exc

    return body


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (InputError("flows.log line 3: bad"), 2),
        (GateFailed("gate failed"), 3),
        (TransientError("S3 unreachable"), 75),
        (ValueError("bug"), 1),
    ],
)
def test_exceptions_map_to_exit_codes(exc: Exception, code: int, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(_raise(exc), ["--log-format", "text"], monkeypatch) == code


def test_outputs_and_params_are_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres: dict[str, str], audit_db: Any
) -> None:
    target = tmp_path / "out.txt"

    def body(ctx: StageContext) -> None:
        with ctx.output("result", str(target)) as out:
            out.path.write_text("hello\n")
            out.rows = 1
        ctx.set_param("sha256", ctx.sha256("result"))
        ctx.metrics["rows"] = 1

    code = _run(body, ["--run-id", "runner-ok", "--params-dir", str(tmp_path / "params")], monkeypatch, postgres)
    assert code == 0
    params = (tmp_path / "params" / "sha256").read_text()
    with audit_db.cursor() as cur:
        cur.execute(
            "SELECT a.sha256, a.rows, s.status, s.metrics->>'rows' FROM stage_artifacts a "
            "JOIN stage_attempts s USING (run_id, stage, attempt) WHERE run_id = %s",
            ("runner-ok",),
        )
        assert cur.fetchall() == [(params, 1, "SUCCEEDED", "1")]


@pytest.mark.parametrize(
    ("argv", "env", "want"), [([], {"STAGE_ATTEMPT": "2"}, 2), (["--attempt", "3"], {"STAGE_ATTEMPT": "2"}, 3)]
)
def test_the_audited_attempt_comes_from_settings_unless_the_flag_says(
    argv: list[str],
    env: dict[str, str],
    want: int,
    monkeypatch: pytest.MonkeyPatch,
    postgres: dict[str, str],
    audit_db: Any,
) -> None:
    run_id = f"runner-attempt-{want}"
    assert _run(lambda ctx: None, ["--run-id", run_id, *argv], monkeypatch, postgres | env) == 0
    with audit_db.cursor() as cur:
        cur.execute("SELECT attempt, status FROM stage_attempts WHERE run_id = %s", (run_id,))
        assert cur.fetchall() == [(want, "SUCCEEDED")]


def test_sigterm_mid_write_leaves_nothing(tmp_path: Path) -> None:
    """A stage killed while writing publishes nothing and exits non-zero."""
    script = textwrap.dedent(f"""
        import argparse, time
        from stages.common.runner import run_stage, main_exit
        def body(ctx):
            with ctx.output("big", {str(tmp_path / "big.bin")!r}) as out:
                with open(out.path, "wb") as fh:
                    fh.write(b"x" * 1000)
                    fh.flush()
                    print("writing", flush=True)
                    time.sleep(30)
        main_exit(run_stage("demo", argparse.ArgumentParser(), body, []))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "terminated by SIGTERM" in err
    assert list(tmp_path.iterdir()) == [], "no artifact and no temp file may remain"


def _two_outputs(first: Path, primary: Path) -> Any:
    def body(ctx: StageContext) -> None:
        with ctx.output("rejects", str(first)) as out:
            out.path.write_text("rejects\n")
        with ctx.output("flows", str(primary), primary=True) as out:
            out.path.write_text("flows\n")

    return body


def test_outputs_are_published_together_primary_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stages.common.storage import Storage

    order: list[str] = []
    real = Storage.publish

    def publish(self: Storage, local: Path, uri: str) -> None:
        assert not (tmp_path / "flows").exists() and not (tmp_path / "rejects").exists() or order
        order.append(Path(uri).name)
        real(self, local, uri)

    monkeypatch.setattr(Storage, "publish", publish)
    assert _run(_two_outputs(tmp_path / "rejects", tmp_path / "flows"), [], monkeypatch) == 0
    assert order == ["rejects", "flows"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows", "rejects"]


def test_a_failed_publish_removes_the_outputs_already_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rejects published, flows fails with a transient fault: exit 75 and neither remains (nor a stale primary)."""
    from stages.common.storage import Storage

    (tmp_path / "flows").write_text("stale flows of an earlier attempt\n")
    real = Storage.publish

    def publish(self: Storage, local: Path, uri: str) -> None:
        if uri.endswith("flows"):
            raise TransientError(f"{uri}: S3 down")
        real(self, local, uri)

    monkeypatch.setattr(Storage, "publish", publish)
    assert _run(_two_outputs(tmp_path / "rejects", tmp_path / "flows"), [], monkeypatch) == 75
    assert list(tmp_path.iterdir()) == []


def test_a_failing_body_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def body(ctx: StageContext) -> None:
        _two_outputs(tmp_path / "rejects", tmp_path / "flows")(ctx)
        raise InputError("late problem")

    assert _run(body, [], monkeypatch) == 2
    assert list(tmp_path.iterdir()) == []


def _sigterm_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(1000):  # the handler runs between bytecodes of the main thread
        pass


def test_a_swallowed_sigterm_is_still_a_termination(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception raised by the handler can be lost (a broad except, a __del__); the flag is not."""

    def body(ctx: StageContext) -> None:
        with ctx.output("result", str(tmp_path / "out.txt"), primary=True) as out:
            out.path.write_text("done\n")
        try:
            _sigterm_self()
        except BaseException:  # noqa: BLE001 - what a careless library (or an import in flight) does
            pass

    assert _run(body, [], monkeypatch) == 1
    assert list(tmp_path.iterdir()) == [], "nothing is published after a termination request"


def test_sigterm_while_loading_a_model_is_reported_as_termination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """load_model maps any parse error to 'not a readable skops model' (exit 2); SIGTERM must not become that."""
    import skops.io as sio

    from stages.common.model_io import load_model

    def signalled(**_: Any) -> list[str]:
        _sigterm_self()
        return []

    monkeypatch.setattr(sio, "get_untrusted_types", signalled)
    assert _run(lambda ctx: load_model(tmp_path / "model.skops"), ["--log-format", "text"], monkeypatch) == 1
    err = capsys.readouterr().err
    assert "terminated by SIGTERM" in err
    assert "not a readable skops model" not in err


def test_two_outputs_at_the_same_place_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--output X --rejects X silently overwrote one output with the other."""
    (tmp_path / "link").symlink_to(tmp_path / "same")
    for second in (tmp_path / "same", tmp_path / "link"):
        assert _run(_two_outputs(tmp_path / "same", second), [], monkeypatch) == 2
        assert sorted(p.name for p in tmp_path.iterdir()) == ["link"]


def test_a_key_that_cannot_be_deleted_does_not_fail_the_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Removing the old primary first is a safeguard; a user without s3:DeleteObject still publishes."""
    from stages.common.storage import Storage

    def refuse(self: Storage, uri: str) -> None:
        raise InputError(f"{uri}: access denied (AccessDenied)")

    monkeypatch.setattr(Storage, "remove", refuse)
    assert _run(_two_outputs(tmp_path / "rejects", tmp_path / "flows"), [], monkeypatch) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows", "rejects"]


@pytest.mark.parametrize(("operator", "disabled"), [(None, True), ("false", False)])
def test_mlflow_usage_telemetry_is_off_unless_the_operator_opts_in(
    operator: str | None, disabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, bool] = {}

    def body(ctx: StageContext) -> None:
        from mlflow.environment_variables import MLFLOW_DISABLE_TELEMETRY

        seen["disabled"] = MLFLOW_DISABLE_TELEMETRY.get()

    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    assert (
        _run(
            body,
            ["--log-format", "text"],
            monkeypatch,
            {} if operator is None else {"MLFLOW_DISABLE_TELEMETRY": operator},
        )
        == 0
    )
    assert seen == {"disabled": disabled}


def test_main_exit_skips_only_the_teardown(tmp_path: Path) -> None:
    """The exit code, unflushed output, exit handlers and temporary directories all survive ``os._exit``."""
    script = textwrap.dedent(f"""
        import argparse, atexit, pathlib, sys, tempfile
        from stages.common.errors import GateFailed
        from stages.common.runner import run_stage, main_exit
        atexit.register(lambda: pathlib.Path({str(tmp_path / "handler-ran")!r}).write_text("yes"))
        scratch = tempfile.TemporaryDirectory(dir={str(tmp_path)!r})
        def body(ctx):
            sys.stdout.write("not flushed yet")
            raise GateFailed("recall 0.4 < 0.5")
        main_exit(run_stage("demo", argparse.ArgumentParser(), body, ["--log-format", "text"]))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG_")}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "not flushed yet"
    assert "recall 0.4 < 0.5" in proc.stderr  # the log line, written by the handler logging.shutdown flushed
    assert (tmp_path / "handler-ran").read_text() == "yes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["handler-ran"]  # the TemporaryDirectory is gone
