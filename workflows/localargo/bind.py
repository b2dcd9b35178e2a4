"""Binding a template's inputs (parameters and artifacts) and its container environment.

Parameters follow Argo's ProcessArgs: an argument's value wins, else the input's ``value``,
else its ``default``; none of them is an error (``inputs.parameters.X was not supplied``);
``enum`` is checked. Artifacts come from the task's ``arguments.artifacts`` (``from`` a
previous task, an ``s3`` key or ``raw`` data) or the input's own ``s3``/``raw``; a missing
one is an error unless ``optional``.

Environment: ``value`` as given; ``valueFrom.secretKeyRef``/``configMapKeyRef`` are read from
the executor's own environment under the env entry's NAME (Secrets and ConfigMaps do not
exist locally: put ``PG_PASSWORD=...`` in the environment or an ``--env-file``); when that
variable is not set the entry is left unset and a warning names it. ``fieldRef`` knows
``metadata.name`` (the pod name), ``metadata.namespace`` and ``status.podIP`` (127.0.0.1).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ResolveError
from .status import ArtifactRef

__all__ = ["RawData", "Source", "bind_parameters", "bind_artifacts", "template_scope", "resolve_env", "artifact_source"]

log = logging.getLogger(__name__)
_warned: set[str] = set()


@dataclass(frozen=True)
class RawData:
    """An inline ``raw`` artifact."""

    data: str


Source = ArtifactRef | RawData


def bind_parameters(template: Mapping[str, Any], args: Mapping[str, str], where: str) -> dict[str, str]:
    """Values of the template's input parameters given the task's ``arguments.parameters``."""
    bound: dict[str, str] = {}
    for p in (template.get("inputs") or {}).get("parameters") or []:
        name = p["name"]
        value = args.get(name)
        if value is None:
            value = p.get("value", p.get("default"))
        if value is None:
            raise ResolveError(f"{where}: inputs.parameters.{name} was not supplied")
        value = str(value)
        enum = [str(e) for e in p.get("enum") or []]
        if enum and value not in enum:
            raise ResolveError(f"{where}: inputs.parameters.{name} value {value!r} is not one of {enum}")
        bound[name] = value
    return bound


def artifact_source(art: Mapping[str, Any]) -> Source | None:
    """The location named by an artifact spec's own ``s3``/``raw`` fields (None without one)."""
    if "raw" in art:
        return RawData(str((art.get("raw") or {}).get("data", "")))
    s3 = art.get("s3")
    if s3 and s3.get("key"):
        return ArtifactRef(art["name"], str(s3["key"]), s3.get("bucket"), archived=None)
    return None


def bind_artifacts(
    template: Mapping[str, Any], args: Mapping[str, Source | None], where: str
) -> dict[str, Source | None]:
    """Source of each input artifact; None for a missing optional one."""
    bound: dict[str, Source | None] = {}
    for art in (template.get("inputs") or {}).get("artifacts") or []:
        name = art["name"]
        source = args.get(name) if name in args else artifact_source(art)
        if source is None and not art.get("optional"):
            raise ResolveError(f"{where}: inputs.artifacts.{name} was not supplied (required artifact)")
        bound[name] = source
    return bound


def template_scope(template: Mapping[str, Any], params: Mapping[str, str], node_name: str) -> dict[str, str]:
    """``inputs.parameters.*``, input/output ``*.path`` and ``node.name`` for substitution in a template."""
    scope = {f"inputs.parameters.{k}": v for k, v in params.items()}
    scope["node.name"] = node_name
    for section in ("inputs", "outputs"):
        for art in (template.get(section) or {}).get("artifacts") or []:
            if art.get("path"):
                scope[f"{section}.artifacts.{art['name']}.path"] = str(art["path"])
    for p in (template.get("outputs") or {}).get("parameters") or []:
        path = (p.get("valueFrom") or {}).get("path")
        if path:
            scope[f"outputs.parameters.{p['name']}.path"] = str(path)
    return scope


def resolve_env(
    entries: list[Mapping[str, Any]], env: Mapping[str, str], pod: str, namespace: str, where: str
) -> dict[str, str]:
    """The container environment; see the module docstring for valueFrom."""
    out: dict[str, str] = {}
    for i, e in enumerate(entries):
        name = e["name"]
        if "valueFrom" not in e:
            out[name] = str(e.get("value", ""))
            continue
        source = e["valueFrom"]
        ref_kind = next(iter(source))
        if ref_kind in ("secretKeyRef", "configMapKeyRef"):
            ref = source[ref_kind]
            if name in env:
                out[name] = env[name]
            elif not ref.get("optional") and name not in _warned:
                _warned.add(name)
                log.warning(
                    "%s: %s %s/%s is taken from the executor's environment variable %s, which is not set; "
                    "%s is left unset (set it, or put it in --env-file)",
                    f"{where}.env[{name}]",
                    ref_kind,
                    ref.get("name"),
                    ref.get("key"),
                    name,
                    name,
                )
        elif ref_kind == "fieldRef":
            path = source["fieldRef"].get("fieldPath")
            known = {"metadata.name": pod, "metadata.namespace": namespace, "status.podIP": "127.0.0.1"}
            if path not in known:
                raise ResolveError(
                    f"{where}.env[{i}].valueFrom.fieldRef: {path!r} is not known locally (known: {', '.join(known)})"
                )
            out[name] = known[path]
        else:
            raise ResolveError(f"{where}.env[{i}].valueFrom.{ref_kind} is not supported")
    return out
