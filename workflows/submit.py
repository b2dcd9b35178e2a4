"""``python -m workflows submit --wait``: submit the pipeline to the Argo Server and follow it.

The workflow is built from the Hera code (or, with ``--from-template``, references the
installed ``WorkflowTemplate``), submitted with the pod's ServiceAccount token, and
followed by polling: every node phase change is logged. The exit code mirrors the final
phase — only ``Succeeded`` is 0; anything else, including a phase this code does not
know, is a failure (see :class:`SubmitExit`). This is the command the Job runs.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import string
import sys
import time
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import Any

__all__ = ["SubmitExit", "parse_params", "workflow_body", "follow", "add_parser"]

log = logging.getLogger(__name__)


class SubmitExit(IntEnum):
    """Exit codes of ``submit``: one per way a submission can end."""

    SUCCEEDED = 0
    FAILED = 1
    """The workflow ended Failed (a stage failed)."""
    USAGE = 2
    """Bad flags or environment (unknown parameter, no server, no namespace, server certificate not trusted)."""
    GATE_FAILED = 3
    """The workflow failed only because eval's quality gate rejected the model: every failed node's
    final attempt is eval exiting 3. Earlier (retried) attempts do not count; if another node's
    final attempt failed too, the exit code is FAILED (a broken stage outranks a rejected model)."""
    ERROR = 4
    """The workflow ended Error, vanished, or reported a phase this code does not know."""
    TIMEOUT = 5
    AUTH = 6
    """401/403 from the Argo Server."""
    REJECTED = 7
    """The server refused the submission (invalid spec, template not found, conflict)."""
    UNREACHABLE = 75
    """The server could not be reached (or kept failing with 5xx) after retries."""


_RUNNING = {"", "Pending", "Running"}
_NAME_CHARS = string.ascii_lowercase + string.digits


def parse_params(pairs: list[str], known: list[str]) -> dict[str, str]:
    """``["name=value", ...]`` → dict; raises ValueError naming a malformed pair or unknown name."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"-p {pair!r}: expected name=value")
        if name not in known:
            raise ValueError(f"-p {name}: unknown workflow parameter; known: {', '.join(known)}")
        if name == "image-tag" and value.strip().lower() in ("", "latest"):
            # A moving tag makes a run unreproducible and lets a pushed image change what runs.
            raise ValueError(f"-p image-tag={value!r}: give a fixed tag (e.g. 0.1.0) or a digest, never latest")
        out[name] = value
    return out


def _parameter_names(partitioned: bool = False) -> list[str]:
    from .stagespec import PARTITIONED_PARAMETERS, WORKFLOW_PARAMETERS

    table = PARTITIONED_PARAMETERS if partitioned else WORKFLOW_PARAMETERS
    return [p.name for p in table] + ["image-registry", "image-tag"]


def workflow_body(
    params: dict[str, str],
    from_template: bool,
    namespace: str,
    partitioned: bool = False,
    parallelism: int | None = None,
) -> dict[str, Any]:
    """The Workflow to POST, with a fixed random name so that a retried create is idempotent."""
    from .pipeline import GENERATE_NAME, LABELS, PARTITIONED_NAME, TEMPLATE_NAME

    prefix = f"{PARTITIONED_NAME}-" if partitioned else GENERATE_NAME
    name = prefix + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
    if from_template:
        body: dict[str, Any] = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"labels": dict(LABELS)},
            "spec": {"workflowTemplateRef": {"name": PARTITIONED_NAME if partitioned else TEMPLATE_NAME}},
        }
        if params:
            body["spec"]["arguments"] = {"parameters": [{"name": k, "value": v} for k, v in params.items()]}
    else:
        from .pipeline import build

        body = build("Workflow", partitioned=partitioned).to_dict()
        for param in body["spec"]["arguments"]["parameters"]:
            if param["name"] in params:
                param["value"] = params[param["name"]]
    if parallelism is not None:  # the Workflow's own value wins over its template's
        body["spec"]["parallelism"] = parallelism
    body["metadata"].pop("generateName", None)
    body["metadata"].update(name=name, namespace=namespace)
    return body


def _node_line(node: dict[str, Any]) -> str:
    name = node.get("displayName") or node.get("name")
    line = f"{name} [{node.get('type', '?')}]: {node.get('phase') or 'Pending'}"
    if node.get("message"):
        line += f" — {node['message']}"
    exit_code = (node.get("outputs") or {}).get("exitCode")
    if exit_code not in (None, "0") and f"exit code {exit_code}" not in line:
        line += f" (exit code {exit_code})"
    params = (node.get("outputs") or {}).get("parameters") or []
    if node.get("phase") == "Succeeded" and params:
        line += " " + " ".join(f"{p['name']}={p.get('value', '')}" for p in params)
    return line


def _log_changes(wf: dict[str, Any], seen: dict[str, str]) -> None:
    status = wf.get("status") or {}
    for node_id, node in sorted((status.get("nodes") or {}).items(), key=lambda kv: kv[1].get("startedAt") or ""):
        phase = node.get("phase") or "Pending"
        if seen.get(node_id) != phase:
            seen[node_id] = phase
            log.info("node %s", _node_line(node))


def _final_failures(wf: dict[str, Any]) -> list[dict[str, Any]]:
    """The failed nodes that decided the outcome, i.e. the final attempt of each failed step.

    A Retry node lists its attempts in order in ``children``; all but the last were
    superseded by a retry (e.g. an exit 75 before eval's gate exit 3) and do not count.
    """
    nodes: dict[str, dict[str, Any]] = (wf.get("status") or {}).get("nodes") or {}
    superseded = {child for n in nodes.values() if n.get("type") == "Retry" for child in (n.get("children") or [])[:-1]}
    failed = [n for i, n in nodes.items() if i not in superseded and n.get("phase") in ("Failed", "Error")]
    pods = [n for n in failed if n.get("type") == "Pod"]
    return pods or [n for n in failed if n.get("type") != "DAG"]


def _final(wf: dict[str, Any]) -> SubmitExit:
    """Map a finished workflow to an exit code, logging what failed."""
    status = wf.get("status") or {}
    phase, name = status.get("phase", ""), wf["metadata"]["name"]
    if phase == "Succeeded":
        log.info("workflow %s Succeeded", name)
        return SubmitExit.SUCCEEDED
    failed = _final_failures(wf)
    for node in failed:
        log.error("failed node %s", _node_line(node))
    summary = "; ".join(_node_line(n) for n in failed) or "no failed node reported"
    if phase == "Failed":
        gate = bool(failed) and all(
            n.get("templateName") == "eval" and (n.get("outputs") or {}).get("exitCode") == "3" for n in failed
        )
        if gate:
            log.error("workflow %s Failed: the quality gate rejected the model (eval exit 3)", name)
            return SubmitExit.GATE_FAILED
        log.error("workflow %s Failed: %s — %s", name, status.get("message", ""), summary)
        return SubmitExit.FAILED
    if phase == "Error":
        log.error("workflow %s Error: %s — %s", name, status.get("message", ""), summary)
    else:
        log.error("workflow %s reported unknown phase %r; treating it as a failure", name, phase)
    return SubmitExit.ERROR


def _stop(client: Any, name: str, message: str) -> dict[str, Any] | None:
    """Stop the workflow; return it instead when it ended before the stop request arrived.

    Argo refuses to stop a finished workflow (HTTP 500 "cannot shutdown a completed
    workflow"), so a failed stop is not retried blindly: the workflow is read again and, if
    it has ended, its real phase decides the exit code. Still running: stop with retries.
    """
    from .argo_client import RejectedError, UnreachableError

    try:
        client.stop(name, message, attempts=1)
    except (RejectedError, UnreachableError) as exc:
        wf: dict[str, Any] = client.get(name)
        if ((wf.get("status") or {}).get("phase") or "") not in _RUNNING:
            log.info("workflow %s ended before the stop request arrived (%s)", name, exc)
            return wf
        log.warning("stop of workflow %s failed (%s); retrying", name, exc)
        client.stop(name, message)
    log.error("requested stop of workflow %s", name)
    return None


def follow(
    client: Any,
    name: str,
    timeout: float | None,
    poll_interval: float,
    stop_on_timeout: bool,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SubmitExit:
    """Poll the workflow until it finishes or ``timeout`` seconds pass; return the exit code."""
    from .argo_client import RejectedError

    deadline = None if not timeout else clock() + timeout
    seen: dict[str, str] = {}
    last_phase: str | None = None
    while True:
        try:
            wf = client.get(name)
        except RejectedError as exc:
            if exc.status == 404:
                log.error("workflow %s disappeared from the server (deleted?): %s", name, exc)
                return SubmitExit.ERROR
            raise
        phase = (wf.get("status") or {}).get("phase") or ""
        if phase in _RUNNING and phase != last_phase:
            log.info("workflow %s: %s", name, phase or "Pending (not yet picked up by the controller)")
        _log_changes(wf, seen)
        last_phase = phase
        if phase not in _RUNNING:
            return _final(wf)
        if deadline is not None and clock() >= deadline:
            log.error("workflow %s still %s after %.0fs (--timeout)", name, phase or "Pending", timeout)
            ended = _stop(client, name, f"stopped by the submitter after {timeout:.0f}s") if stop_on_timeout else None
            if ended is not None:
                _log_changes(ended, seen)
                return _final(ended)
            return SubmitExit.TIMEOUT
        sleep(poll_interval)


def _run(args: argparse.Namespace) -> int:
    from .argo_client import ArgoClient, AuthError, RejectedError, ServerConfig, TLSConfigError, UnreachableError

    try:
        params = parse_params(args.param, _parameter_names(args.partitioned))
        if args.parallelism is not None and args.parallelism < 1:
            raise ValueError(f"--parallelism {args.parallelism}: give at least 1")
        config = ServerConfig.from_env(
            server=args.server,
            namespace=args.namespace,
            token_file=args.token_file,
            ca_file=args.ca_file,
            insecure=True if args.insecure else None,
        )
    except ValueError as exc:
        log.error("%s", exc)
        return SubmitExit.USAGE
    if config.token is None and config.token_file is None:
        log.warning("no token (ARGO_TOKEN unset, %s missing): submitting without Authorization", args.token_file)
    client = ArgoClient(config, attempts=args.attempts, backoff=args.backoff)
    body = workflow_body(params, args.from_template, config.namespace, args.partitioned, args.parallelism)
    source = (
        "workflowtemplate/" + body["spec"]["workflowTemplateRef"]["name"] if args.from_template else "the Hera code"
    )
    try:
        log.info(
            "submitting %s from %s to %s (namespace %s, token from %s)",
            body["metadata"]["name"],
            source,
            config.url,
            config.namespace,
            config.token_source,
        )
        created = client.create(body)
        name = str((created.get("metadata") or {}).get("name") or body["metadata"]["name"])
        sys.stdout.write(f"{name}\n")
        if not args.wait:
            return SubmitExit.SUCCEEDED
        return follow(client, name, args.timeout, args.poll_interval, args.stop_on_timeout)
    except AuthError as exc:
        log.error("%s", exc)
        return SubmitExit.AUTH
    except RejectedError as exc:
        log.error("the Argo Server refused the request: %s", exc)
        return SubmitExit.REJECTED
    except TLSConfigError as exc:
        log.error("%s", exc)
        return SubmitExit.USAGE
    except UnreachableError as exc:
        log.error("%s", exc)
        return SubmitExit.UNREACHABLE


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``submit`` subcommand."""
    from .argo_client import SA_TOKEN_FILE

    codes = ", ".join(f"{c.value} {c.name.lower()}" for c in SubmitExit)
    p = subparsers.add_parser(
        "submit",
        help="submit the workflow to the Argo Server (and --wait for it)",
        description=(
            "Submit the pipeline to the Argo Server (built from the Hera code, or referencing the installed "
            "WorkflowTemplate with --from-template), follow every node phase change, and exit 0 only when the "
            f"workflow Succeeded.\n\nExit codes: {codes}.\n\nEnvironment: ARGO_SERVER, ARGO_NAMESPACE, ARGO_TOKEN "
            "(else the pod's ServiceAccount token), ARGO_CA_FILE, ARGO_INSECURE_SKIP_VERIFY, ARGO_SECURE, ARGO_BASE_HREF."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--wait", action="store_true", help="follow the workflow and exit with its outcome")
    p.add_argument(
        "--from-template",
        action="store_true",
        help="reference the installed WorkflowTemplate instead of sending the Hera-built spec",
    )
    p.add_argument(
        "--partitioned",
        action="store_true",
        help="the partitioned pipeline (one pod per file of a many-file source) instead of the single-pod one",
    )
    p.add_argument(
        "--parallelism",
        type=int,
        default=None,
        metavar="N",
        help="pods of the workflow running at once (spec.parallelism; default: the template's)",
    )
    p.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a workflow parameter (repeatable), e.g. -p source=s3://bucket/conn.log.gz",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=5 * 3600,
        metavar="SECONDS",
        help="give up waiting after this many seconds; 0 waits forever (default: %(default)s)",
    )
    p.add_argument("--stop-on-timeout", action="store_true", help="ask the server to stop the workflow on timeout")
    p.add_argument(
        "--poll-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between status polls (default: %(default)s)",
    )
    p.add_argument("--namespace", default=None, help="namespace (default: $ARGO_NAMESPACE, else the pod's own)")
    p.add_argument("--server", default=None, help="Argo Server URL (default: $ARGO_SERVER)")
    p.add_argument(
        "--token-file",
        type=Path,
        default=SA_TOKEN_FILE,
        help="bearer token file used when ARGO_TOKEN is unset (default: %(default)s)",
    )
    p.add_argument(
        "--ca-file", default=None, help="CA bundle for the server's TLS certificate (default: $ARGO_CA_FILE)"
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="skip TLS verification (also $ARGO_INSECURE_SKIP_VERIFY=true); for test clusters only",
    )
    p.add_argument(
        "--attempts", type=int, default=6, help="tries per API call on connection errors/5xx (default: %(default)s)"
    )
    p.add_argument(
        "--backoff",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="first retry delay, doubled per retry up to 30 s (default: %(default)s)",
    )
    p.set_defaults(handler=_run)
