"""The one MLflow call policy: what is transient, how often it is retried, what a stage then raises."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from stages.common.config import Settings
from stages.common.errors import ExitCode, TransientError
from stages.common.mlflow_calls import MlflowCalls, MlflowRefused, http_status, is_transient


def _mlflow_error(code: str, message: str = "x") -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2

    return MlflowException(message, error_code=getattr(databricks_pb2, code))


def _http_error(status: int) -> Exception:
    import requests

    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} for url", response=response)


def _rest_error(code: str) -> Exception:
    from mlflow.exceptions import RestException

    return RestException({"error_code": code, "message": "from the server"})


@pytest.mark.parametrize(
    ("make", "transient", "status"),
    [
        (lambda: _mlflow_error("TEMPORARILY_UNAVAILABLE"), True, 503),
        (lambda: _mlflow_error("DEADLINE_EXCEEDED"), True, 504),
        (lambda: _mlflow_error("REQUEST_LIMIT_EXCEEDED"), True, 429),
        (lambda: _rest_error("INTERNAL_ERROR"), True, 500),
        (lambda: _rest_error("RESOURCE_DOES_NOT_EXIST"), False, 404),
        (lambda: _mlflow_error("PERMISSION_DENIED"), False, 403),
        (lambda: _mlflow_error("UNAUTHENTICATED"), False, 401),
        (lambda: _http_error(502), True, 502),
        (lambda: _http_error(404), False, 404),
        (lambda: __import__("requests").ConnectionError("reset"), True, None),
        (lambda: __import__("requests").Timeout("read timed out"), True, None),
        (lambda: ConnectionRefusedError(111, "refused"), True, None),
        (lambda: TimeoutError("slow"), True, None),
        (lambda: FileNotFoundError("model.skops"), False, None),  # a local disk error is not the service
        (lambda: ValueError("bug"), False, None),
    ],
    ids=[
        "503",
        "504",
        "429",
        "rest-500",
        "rest-404",
        "403",
        "401",
        "artifact-502",
        "artifact-404",
        "connection",
        "timeout",
        "refused",
        "builtin-timeout",
        "local-oserror",
        "other",
    ],
)
def test_one_definition_of_transient(make: Callable[[], Exception], transient: bool, status: int | None) -> None:
    exc = make()
    assert is_transient(exc) is transient
    assert http_status(exc) == status


def _flaky(errors: list[Exception], result: Any = "ok") -> tuple[Callable[[], Any], list[int]]:
    calls: list[int] = []

    def fn() -> Any:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return result

    return fn, calls


def _calls(uri: str = "http://mlflow:5000", attempts: int = 3) -> MlflowCalls:
    return MlflowCalls(uri, attempts=attempts, base_delay=0.001)


def test_transient_faults_are_retried_until_the_call_succeeds() -> None:
    fn, calls = _flaky([_mlflow_error("TEMPORARILY_UNAVAILABLE"), __import__("requests").ConnectionError("reset")])
    assert _calls().call("log params", fn) == "ok"
    assert len(calls) == 3


def test_a_fault_that_outlasts_the_attempts_is_exit_75_naming_the_uri_without_credentials() -> None:
    password = f"pw-{secrets.token_hex(4)}"  # made at run time: no literal secret in git
    uri = f"http://analyst:{password}@mlflow:5000"
    fn, calls = _flaky([_mlflow_error("TEMPORARILY_UNAVAILABLE", f"API request to {uri}/api failed")] * 5)
    with pytest.raises(
        TransientError, match=r"MLFLOW_TRACKING_URI=http://mlflow:5000 failed to log params after 2"
    ) as err:
        _calls(uri, attempts=2).call("log params", fn)
    assert len(calls) == 2 and err.value.exit_code == ExitCode.TRANSIENT
    assert password not in str(err.value) and "analyst" not in str(err.value)


def test_a_permanent_error_is_not_retried_and_keeps_its_status() -> None:
    password = f"pw-{secrets.token_hex(4)}"
    uri = f"http://analyst:{password}@mlflow:5000"
    fn, calls = _flaky([_mlflow_error("PERMISSION_DENIED", f"API request to {uri}/api denied")])
    with pytest.raises(
        MlflowRefused,
        match=r"MLFLOW_TRACKING_URI=http://mlflow:5000: could not tag the model version \(MlflowException: API",
    ) as err:
        _calls(uri).call("tag the model version", fn)
    assert len(calls) == 1 and err.value.status == 403 and not err.value.not_found
    assert err.value.exit_code == ExitCode.UNEXPECTED
    assert password not in str(err.value)


def test_not_found_is_permanent_and_says_so() -> None:
    fn, calls = _flaky([_rest_error("RESOURCE_DOES_NOT_EXIST")])
    with pytest.raises(MlflowRefused) as err:
        _calls().call("read the champion alias", fn)
    assert len(calls) == 1 and err.value.not_found


def test_attempts_can_be_narrowed_per_call() -> None:
    fn, calls = _flaky([TimeoutError("slow")] * 5)
    with pytest.raises(TransientError, match="after 1 attempts"):
        _calls(attempts=5).call("list experiments", fn, attempts=1)
    assert len(calls) == 1


def test_policy_comes_from_settings() -> None:
    settings = Settings.from_env(
        {
            "MLFLOW_TRACKING_URI": "http://mlflow:5000",
            "MLFLOW_RETRIES": "7",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0.5",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "12",
        }
    )
    calls = MlflowCalls.from_settings(settings)
    assert (calls.tracking_uri, calls.attempts, calls.http_max_retries) == ("http://mlflow:5000", 7, 0)
    assert (calls.http_backoff_factor, calls.http_timeout) == (0.5, 12.0)
    with pytest.raises(ValueError, match="MLFLOW_TRACKING_URI is not set"):
        MlflowCalls.from_settings(Settings())


def test_limit_http_retries_is_what_mlflow_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    for name in (
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    MlflowCalls.from_settings(Settings.from_env(os.environ | {"MLFLOW_TRACKING_URI": "http://m"})).limit_http_retries()
    assert (MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_TIMEOUT.get()) == (2, 30)  # not MLflow's 7, 120
    assert MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get() == 1
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # an operator's value is kept
    MlflowCalls.from_settings(Settings.from_env(os.environ | {"MLFLOW_TRACKING_URI": "http://m"})).limit_http_retries()
    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 0
