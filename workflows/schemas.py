"""Schema checks of one manifest document: Argo kinds and Kubernetes core kinds.

Argo kinds (Workflow, WorkflowTemplate, CronWorkflow) are always checked against what the
project installs: the JSON schema of Hera's generated Argo models (their header names the
Argo release they were generated from: v4.0.5 for hera 7.1.0, the release the cluster runs),
plus an unknown-field walk, because neither schema sets ``additionalProperties: false`` and
a misspelled field would pass. Where the vendored Argo v4.1.2 files are present
(``../shared/argo``, ``--schemas`` or ``ARGO_SCHEMAS_DIR``) they are an extra check: their JSON
schema and the CRD's structural ``openAPIV3Schema`` (what the API server enforces). Core
kinds go through ``kubernetes-validate --strict`` (offline, it ships the schemas).
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "ARGO_KINDS",
    "Finding",
    "SchemaDirError",
    "default_schemas_dir",
    "vendored_schemas",
    "json_path",
    "ArgoSchemas",
    "check_argo",
    "hera_argo_version",
    "check_core",
    "unknown_fields",
]

ARGO_KINDS = {
    "Workflow": "crd-workflows.yaml",
    "WorkflowTemplate": "crd-workflowtemplates.yaml",
    "CronWorkflow": "crd-cronworkflows.yaml",
}
_DEFINITION = "io.argoproj.workflow.v1alpha1.{kind}"


class SchemaDirError(Exception):
    """The vendored Argo schema directory is missing or incomplete."""


@dataclass(frozen=True)
class Finding:
    """One problem in a document: where (JSON path), what, and which check found it."""

    path: str
    message: str
    check: str


def json_path(parts: Any) -> str:
    """``$.spec.templates[1].container.image`` from a sequence of keys and indexes."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.replace("-", "").replace("_", "").isalnum():
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def default_schemas_dir() -> Path:
    """``$ARGO_SCHEMAS_DIR``, else ``<repo>/../shared/argo`` (CI clones the repo beside ``shared/``)."""
    env = os.environ.get("ARGO_SCHEMAS_DIR", "").strip()
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "argo"


def vendored_schemas(explicit: Path | None = None) -> ArgoSchemas | None:
    """The vendored schemas: ``explicit`` must be complete; the default location is optional.

    A fresh clone has no ``../shared/argo``; validation then rests on Hera's models alone
    (None here), but a directory named on the command line that lacks the files is an error.
    """
    directory = explicit or default_schemas_dir()
    if explicit is None and not (directory / "schema.json").is_file():
        return None
    return ArgoSchemas(directory)


def _type_hint(error: Any) -> str:
    """Explain the Quantity/IntOrString quirk when a number sits where the schema wants a string."""
    if error.validator == "type" and error.validator_value == "string" and isinstance(error.instance, (int, float)):
        return (
            f" (write it as a string: '{error.instance}'; Argo's JSON schema types Quantity and "
            "IntOrString as string, although Kubernetes would accept the number)"
        )
    return ""


@lru_cache(maxsize=4)
def _load_yaml(path: Path) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open() as fh:
        return yaml.load(fh, Loader=loader)  # noqa: S506 - a safe loader (C or pure Python)


@lru_cache(maxsize=2)
def _load_json(path: Path) -> Any:
    with path.open() as fh:
        return json.load(fh)


class ArgoSchemas:
    """Validators for the Argo kinds, loaded lazily from ``directory`` and cached per process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        missing = [n for n in ("schema.json", *ARGO_KINDS.values()) if not (directory / n).is_file()]
        if missing:
            raise SchemaDirError(
                f"{directory}: missing {', '.join(missing)}; point --schemas or ARGO_SCHEMAS_DIR at the vendored "
                "Argo v4.1.2 schema directory (shared/argo beside the repository)"
            )

    @property
    def definitions(self) -> dict[str, Any]:
        return dict(_load_json(self.directory / "schema.json")["definitions"])

    def kind_schema(self, kind: str) -> dict[str, Any]:
        """The JSON schema of one kind: a ``$ref`` into the shared definitions."""
        return {"$ref": "#/definitions/" + _DEFINITION.format(kind=kind), "definitions": self.definitions}

    def crd_schema(self, kind: str, api_version: str) -> dict[str, Any]:
        crd = _load_yaml(self.directory / ARGO_KINDS[kind])
        version = api_version.rpartition("/")[2]
        for entry in crd["spec"]["versions"]:
            if entry["name"] == version:
                return dict(entry["schema"]["openAPIV3Schema"])
        raise SchemaDirError(f"{self.directory / ARGO_KINDS[kind]}: no version {version!r} for {kind}")

    def check(self, doc: dict[str, Any]) -> list[Finding]:
        """JSON schema + CRD + unknown-field findings of an Argo document."""
        import jsonschema

        kind = doc["kind"]
        findings = []
        validator = jsonschema.Draft7Validator(self.kind_schema(kind))
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
            if error.validator == "required" and "templateDefaults" in error.absolute_path:
                # schema.json reuses the full Container for templateDefaults, a partial template Argo
                # merges into each one (the CRD the API server enforces requires nothing there)
                continue
            findings.append(Finding(json_path(error.absolute_path), error.message + _type_hint(error), "schema.json"))
        crd_validator = jsonschema.Draft7Validator(self.crd_schema(kind, doc.get("apiVersion", "")))
        for error in sorted(crd_validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
            findings.append(Finding(json_path(error.absolute_path), error.message, f"CRD {ARGO_KINDS[kind]}"))
        for path, message in unknown_fields(doc, self.kind_schema(kind), self.definitions):
            findings.append(Finding(path, message, "unknown-field"))
        return findings


def hera_argo_version() -> str:
    """The Argo release Hera's models were generated from (their header: ``argo-workflows-X.Y.Z.json``)."""
    import re

    from hera.workflows.models.io.argoproj.workflow import v1alpha1

    head = Path(str(v1alpha1.__file__)).read_text()[:500]
    found = re.search(r"argo-workflows-(v?[\d.]+?)\.json", head)
    return f"v{found.group(1).lstrip('v')}" if found else "unknown"


def _without_null(node: Any) -> Any:
    """Pydantic writes an optional field as ``anyOf: [X, {type: null}]``: keep X, so errors name X's type."""
    if isinstance(node, list):
        return [_without_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _without_null(v) for k, v in node.items()}
    members = [m for m in out.get("anyOf", []) if m != {"type": "null"}]
    if "anyOf" in out and len(members) == 1:
        del out["anyOf"]
        out.update(members[0])
    return out


@lru_cache(maxsize=4)
def _hera_schema(kind: str) -> dict[str, Any]:
    from hera.workflows.models.io.argoproj.workflow import v1alpha1

    model = getattr(v1alpha1, kind)
    return dict(_without_null(model.model_json_schema(by_alias=True, mode="validation")))


def _drop_nulls(node: Any) -> Any:
    """``field: null`` means unset to the API server (it prunes it), so the checks ignore it too."""
    if isinstance(node, dict):
        return {k: _drop_nulls(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_drop_nulls(item) for item in node]
    return node


def _check_hera(doc: dict[str, Any]) -> list[Finding]:
    """JSON schema of Hera's model of the kind, then the unknown-field walk over the same schema."""
    import jsonschema

    schema = _hera_schema(str(doc["kind"]))
    doc = _drop_nulls(doc)
    label = f"hera models (Argo {hera_argo_version()})"
    findings = []
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        findings.append(Finding(json_path(error.absolute_path), error.message + _type_hint(error), label))
    for path, message in unknown_fields(doc, schema, schema["$defs"]):
        findings.append(Finding(path, message, "unknown-field"))
    return findings


def check_argo(doc: dict[str, Any], vendored: ArgoSchemas | None) -> list[Finding]:
    """Hera-model findings, plus the vendored schema's when present; a finding both report is listed once."""
    merged: dict[tuple[str, str], Finding] = {}
    for finding in _check_hera(doc) + (vendored.check(doc) if vendored else []):
        key = (finding.path, finding.message)
        if key in merged and finding.check not in merged[key].check:
            finding = Finding(finding.path, finding.message, f"{merged[key].check}, {finding.check}")
        merged[key] = finding
    return list(merged.values())


def _resolve(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = definitions[schema["$ref"].rpartition("/")[2]]
    return schema


def unknown_fields(
    instance: Any, schema: dict[str, Any], definitions: dict[str, Any], parts: tuple[Any, ...] = ()
) -> Iterator[tuple[str, str]]:
    """Yield ``(json path, message)`` for every key the schema's ``properties`` do not name."""
    schema = _resolve(schema, definitions)
    if isinstance(instance, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in instance.items():
            if props is not None and key in props:
                yield from unknown_fields(value, props[key], definitions, (*parts, key))
            elif isinstance(extra, dict):
                yield from unknown_fields(value, extra, definitions, (*parts, key))
            elif props is not None and not extra:
                close = difflib.get_close_matches(str(key), list(props), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known here: {', '.join(sorted(props))}"
                yield json_path((*parts, key)), f"unknown field {key!r} ({hint})"
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(instance):
            yield from unknown_fields(item, schema["items"], definitions, (*parts, index))


def _core_validator(kind: str, api_version: str, version: str) -> Any:
    """A strict validator of one core kind from kubernetes-validate's bundled schemas (None: unknown kind)."""
    import re

    import jsonschema
    from kubernetes_validate import utils as kv
    from referencing import Registry, Resource

    schema_version = [v for v in kv.all_versions() if kv.major_minor(v) <= kv.major_minor(version)][-1]
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema_dir = f"kubernetes-json-schema/v{schema_version}-local-strict"
    try:
        schema = kv.schema_contents(f"{schema_dir}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        return None, schema_version
    definitions = kv.schema_contents(f"{schema_dir}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry), schema_version


def check_core(doc: dict[str, Any], kubernetes_version: str | None = None) -> list[Finding]:
    """``kubernetes-validate --strict`` of a core-kind document (offline schemas), every error reported."""
    from kubernetes_validate import utils as kv

    version = (kubernetes_version or kv.latest_version()).lstrip("v")
    validator, schema_version = _core_validator(str(doc["kind"]), str(doc["apiVersion"]), version)
    if validator is None:
        return [
            Finding(
                "$.kind",
                f"no Kubernetes {schema_version} schema for kind {doc['kind']!r} with apiVersion "
                f"{doc['apiVersion']!r}; only Argo kinds and Kubernetes core kinds can be validated",
                "kubernetes-validate",
            )
        ]
    check = f"kubernetes-validate --strict {kv.major_minor(schema_version)}"
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    findings = []
    for error in errors:
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set(error.schema.get("properties") or {})
            for key in sorted(set(error.instance) - known):
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                findings.append(Finding(json_path((*error.absolute_path, key)), f"unknown field {key!r}{hint}", check))
            continue
        findings.append(Finding(json_path(error.absolute_path), error.message, check))
    return findings
