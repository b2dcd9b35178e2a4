"""The executor's small languages: depends, when, retry expressions and {{...}} substitution."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflows.localargo.errors import ManifestError, ResolveError, Unsupported
from workflows.localargo.expr import depends_tasks, eval_depends, eval_retry, eval_when
from workflows.localargo.retry import RetrySpec, parse_duration
from workflows.localargo.runtimes.subprocess_runtime import map_arg
from workflows.localargo.status import Node, Phase
from workflows.localargo.templating import require_resolved, substitute

PHASES = {
    "A": Phase.SUCCEEDED,
    "B": Phase.FAILED,
    "C": Phase.SKIPPED,
    "D": Phase.ERROR,
    "E": Phase.OMITTED,
    "data-prep": Phase.SUCCEEDED,
}
CONTINUE_ON = {"B": (False, True), "D": (True, False)}


def results(task: str) -> dict[str, bool]:
    phase = PHASES[task]
    return {
        "Succeeded": phase == Phase.SUCCEEDED,
        "Failed": phase == Phase.FAILED,
        "Errored": phase == Phase.ERROR,
        "Skipped": phase == Phase.SKIPPED,
        "Omitted": phase == Phase.OMITTED,
        "Daemoned": False,
        "AnySucceeded": False,
        "AllFailed": False,
    }


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("A", True),
        ("A.Succeeded", True),
        ("A.Failed", False),
        ("B.Failed", True),
        ("B.Succeeded || B.Failed", True),
        ("C", True),  # plain name: Succeeded || Skipped || Daemoned
        ("C.Succeeded", False),
        ("E", False),  # Omitted is not in the plain expansion
        ("E.Omitted", True),
        ("D.Errored && !A.Failed", True),
        ("!(A && C)", False),
        ("(A.Succeeded || B.Succeeded) && C.Skipped", True),
        ("data-prep && A", True),  # task names with dashes
        ("A.AnySucceeded", False),  # only true for expanded (withItems) tasks, as in Argo
    ],
)
def test_depends_without_continue_on(expr: str, expected: bool) -> None:
    assert eval_depends(expr, results, lambda t: (False, False), "depends") is expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("B", True),  # continueOn.failed adds B.Failed to the plain expansion
        ("D", True),  # continueOn.error adds D.Errored
        ("A && B && D", True),
        ("B.Succeeded", False),
    ],
)
def test_depends_bare_name_honours_continue_on(expr: str, expected: bool) -> None:
    assert eval_depends(expr, results, lambda t: CONTINUE_ON.get(t, (False, False)), "depends") is expected


def test_depends_tasks_lists_names_in_order() -> None:
    assert depends_tasks("(b.Failed || a) && !c.Skipped && a", "f") == ["b", "a", "c"]


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("A.Finished", "task result 'Finished'"),
        ("A == B", "operator '==' is not part of Argo's depends logic"),
        ("A &&", "unexpected 'end of expression'"),
        ("A.failed", "cannot parse"),
    ],
)
def test_depends_refuses_what_argo_does_not_have(expr: str, message: str) -> None:
    with pytest.raises(Unsupported, match=message):
        depends_tasks(expr, "spec.templates[main].dag.tasks[x].depends")


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("heads == heads", True),  # bare words are strings (Argo's govaluate quirk)
        ("heads == tails", False),
        ("'a b' == 'a b'", True),
        ("5 > 3", True),
        ("5 > 30", False),
        ("3.5 >= 3.5 && 2 < 10", True),
        ("true", True),
        ("!false || 1 == 2", True),
        ("v1.2 =~ '^v1'", True),
        ("abc !~ 'b$'", True),
        ("5 == '5'", False),  # number and string never equal
    ],
)
def test_when(expr: str, expected: bool) -> None:
    assert eval_when(expr, "when") is expected


@pytest.mark.parametrize(
    ("expr", "error", "match"),
    [
        ("my-value == x", Unsupported, "cannot parse"),
        ("5 > abc", ResolveError, "cannot compare"),
        ("heads", ResolveError, "not a boolean"),
        ("len(x) > 1", Unsupported, "function 'len'"),
    ],
)
def test_when_errors(expr: str, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        eval_when(expr, "when")


LAST = {"exitCode": "75", "status": "Failed", "duration": "1.5", "message": "Error (exit code 75)"}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("asInt(lastRetry.exitCode) == 75", True),
        ("asInt(lastRetry.exitCode) == 2", False),
        ("lastRetry.exitCode == 75", False),  # a string is never equal to a number (expr-lang)
        ("lastRetry.exitCode == '75'", True),
        ('lastRetry.status == "Failed" && asInt(lastRetry.exitCode) != 1', True),
        ("asInt(lastRetry.exitCode) in [75, 76]", True),
        ("asFloat(lastRetry.duration) < 1", False),
        ("not (lastRetry.status == 'Error') and true", True),
    ],
)
def test_retry_expression(expr: str, expected: bool) -> None:
    assert eval_retry(expr, LAST, "retryStrategy.expression") is expected


@pytest.mark.parametrize(
    ("expr", "error", "match"),
    [
        ("lastRetry.exitCode + 1 == 76", Unsupported, r"cannot parse"),
        ("sprig.trim(lastRetry.message) == ''", Unsupported, "function 'sprig.trim'"),
        ("retries < 3", Unsupported, "unknown variable 'retries'"),
        ("asInt(lastRetry.status) == 1", ResolveError, r"asInt\('Failed'\) is not a number"),
    ],
)
def test_retry_expression_refusals(expr: str, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        eval_retry(expr, LAST, "retryStrategy.expression")


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), ("10", 10)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "f") == pytest.approx(seconds)


def _attempt(phase: str, code: int | None) -> Node:
    node = Node("wf.t(0)", "t(0)", "Pod", "t", "wf")
    node.start()
    node.exit_code = code
    node.finish(phase, f"Error (exit code {code})")
    return node


@pytest.mark.parametrize(
    ("raw", "phase", "code", "attempts", "retry", "why"),
    [
        ({"limit": 2, "expression": "asInt(lastRetry.exitCode) == 75"}, Phase.FAILED, 75, 1, True, ""),
        ({"limit": 2, "expression": "asInt(lastRetry.exitCode) == 75"}, Phase.FAILED, 2, 1, False, "expression"),
        ({"limit": 2, "expression": "asInt(lastRetry.exitCode) == 75"}, Phase.ERROR, 75, 1, True, ""),  # Always
        ({"limit": 2, "expression": "asInt(lastRetry.exitCode) == 75"}, Phase.FAILED, 75, 3, False, "No more retries"),
        ({"limit": 2, "retryPolicy": "OnFailure", "expression": "true"}, Phase.ERROR, None, 1, False, "Error"),
        ({"limit": 2, "retryPolicy": "OnError"}, Phase.FAILED, 1, 1, False, "exit code 1"),
        ({"limit": 2, "retryPolicy": "OnError"}, Phase.ERROR, None, 1, True, ""),
        ({"limit": 0}, Phase.FAILED, 1, 1, False, "No more retries"),
        ({}, Phase.FAILED, 1, 50, True, ""),  # no limit: until it succeeds
        ({"limit": 5, "backoff": {"duration": "1m", "maxDuration": "30s"}}, Phase.FAILED, 1, 1, False, "would exceed"),
    ],
)
def test_retry_decisions(raw: dict, phase: str, code: int | None, attempts: int, retry: bool, why: str) -> None:
    spec = RetrySpec.parse(raw, "retryStrategy")
    assert spec is not None
    last = _attempt(phase, code)
    assert last.started_at is not None and last.finished_at is not None
    step = spec.decide(last, last.started_at, attempts, last.finished_at)
    assert step.wait == 0 and (step.stop is None) is retry
    assert why in (step.stop or "")


BACKOFF = {"duration": "30s"}


@pytest.mark.parametrize(
    ("raw", "code", "attempts", "later", "wait", "stop"),
    [
        # the backoff comes first: exit 3 waits, then the expression ends it (operator.go order)
        ({"limit": 3, "expression": "asInt(lastRetry.exitCode) == 75", "backoff": BACKOFF}, 3, 1, 0, 30, None),
        (
            {"limit": 3, "expression": "asInt(lastRetry.exitCode) == 75", "backoff": BACKOFF},
            3,
            1,
            30,
            0,
            "retryStrategy.expression evaluated to false",
        ),
        ({"limit": 3, "backoff": BACKOFF}, 1, 4, 0, 0, "No more retries left"),  # none left: no wait
        ({"expression": "asInt(lastRetry.exitCode) == 75", "backoff": BACKOFF}, 75, 1, 0, 0, None),  # no limit: at once
        (
            {"limit": 3, "backoff": {"duration": "30s", "maxDuration": "10m"}},
            1,
            1,
            601,
            0,
            "Max duration limit exceeded",
        ),
    ],
)
def test_backoff_comes_before_policy_limit_and_expression(
    raw: dict, code: int, attempts: int, later: float, wait: float, stop: str | None
) -> None:
    spec = RetrySpec.parse(raw, "retryStrategy")
    assert spec is not None
    last = _attempt(Phase.FAILED, code)
    assert last.started_at is not None and last.finished_at is not None
    step = spec.decide(last, last.started_at, attempts, last.finished_at + later)
    assert step.wait == pytest.approx(wait) and step.stop == stop


def test_backoff_factor_must_be_an_integer_as_in_argo() -> None:
    with pytest.raises(ManifestError, match="value '1.5' cannot be resolved to an int"):
        RetrySpec.parse({"backoff": {"duration": "1s", "factor": "1.5"}}, "retryStrategy")


def test_backoff_grows_by_factor_and_is_capped() -> None:
    spec = RetrySpec.parse({"limit": 5, "backoff": {"duration": "2s", "factor": "3", "cap": "10s"}}, "r")
    assert spec is not None
    assert [spec.delay(n) for n in (1, 2, 3)] == [2.0, 6.0, 10.0]


def test_substitution_is_single_pass_and_strict_at_the_end() -> None:
    scope = {"inputs.parameters.a": "{{inputs.parameters.b}}", "workflow.name": "wf"}
    out = substitute({"args": ["--x={{ inputs.parameters.a }}", "{{workflow.name}}-{{pod.name}}"]}, scope, "t")
    assert out["args"][0] == "--x={{inputs.parameters.b}}"  # values are not re-scanned
    with pytest.raises(ResolveError, match=r"t.args\[0\]: cannot resolve \{\{inputs.parameters.b\}\}"):
        require_resolved(out, "t", scope)


def test_expression_tags_are_refused() -> None:
    with pytest.raises(Unsupported, match="expression tag"):
        substitute("{{=sprig.upper(inputs.parameters.x)}}", {}, "spec.templates[a].container.args[0]")


SANDBOX = {
    "/tmp": Path("/tmp/sb/vol"),
    "/tmp/outputs": Path("/tmp/sb/out"),
    "/tmp/inputs": Path("/tmp/sb/in"),
    "/mnt/vol": Path("/tmp/sb/mnt"),
}


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("--output=/tmp/outputs/flows.parquet", "--output=/tmp/sb/out/flows.parquet"),  # longest prefix wins
        ("/tmp/inputs/a", "/tmp/sb/in/a"),
        ("/tmp", "/tmp/sb/vol"),
        ("/mnt/vol", "/tmp/sb/mnt"),
        ("/tmpfoo", "/tmpfoo"),  # whole components only
        ("/var/tmp/x", "/var/tmp/x"),
        ("/tmp.d", "/tmp.d"),
        ("s3://bucket/tmp/outputs/x", "s3://bucket/tmp/outputs/x"),
        ("--source=synthetic://?rows=10", "--source=synthetic://?rows=10"),
        # a mapped path inside other text is data or a path: refused (None), never rewritten
        ("grep /mnt/vol /proc/mounts", None),
        ("open('/tmp/outputs/x')", None),
        ("/tmp/x /tmp/inputs/a", None),
        ("--x=/tmp/x,/tmp/inputs/a", None),
        ("-c=print('/tmp/outputs')", None),
    ],
)
def test_subprocess_runtime_rewrites_path_arguments_only(arg: str, expected: str | None) -> None:
    assert map_arg(arg, SANDBOX) == expected
