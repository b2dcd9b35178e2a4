"""``python -m workflows validate FILE...``: schema and project-rule checks of manifests.

Every document of every (multi-document) YAML file is checked: Argo kinds against Hera's
generated Argo models (and the vendored Argo schema and CRDs where present) plus an
unknown-field walk and a check that every ``{{...}}`` reference and task/template name
resolves, core kinds with
``kubernetes-validate --strict``, a ``Kustomization`` for its resource files, and all of
them against the project rules (``rules.py``). Each problem names the file, the document
index and the JSON path. Exit 0 when everything is valid, 2 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .schemas import ArgoSchemas

__all__ = ["Problem", "validate_files", "validate_document", "add_parser"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """A finding located in a file: ``<file>[doc <n>] <json path>: <message> (<check>)``."""

    file: str
    doc: int | None
    path: str
    message: str
    check: str

    def __str__(self) -> str:
        where = f"{self.file}[doc {self.doc}]" if self.doc is not None else self.file
        return f"{where} {self.path}: {self.message} ({self.check})"


def _load_documents(path: Path) -> list[Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open() as fh:
        return [doc for doc in yaml.load_all(fh, Loader=loader) if doc is not None]  # noqa: S506 - safe loader


def _kustomization(doc: dict[str, Any], base: Path) -> list[tuple[str, str, str]]:
    """Each listed resource must exist beside the kustomization (kustomize forbids paths outside it)."""
    out = []
    for index, resource in enumerate(doc.get("resources") or []):
        target = (base / str(resource)).resolve()
        if not target.exists():
            out.append((f"$.resources[{index}]", f"resource {resource!r} not found at {target}", "kustomization"))
        elif base.resolve() not in target.parents and target != base.resolve():
            out.append(
                (
                    f"$.resources[{index}]",
                    f"resource {resource!r} is outside {base}; kustomize refuses it by default",
                    "kustomization",
                )
            )
    return out


def validate_document(
    doc: Any, schemas: ArgoSchemas | None, base: Path, kubernetes_version: str | None = None
) -> list[tuple[str, str, str]]:
    """``(json path, message, check)`` findings of one parsed document (``schemas``: the vendored ones, if any)."""
    from .references import check_references
    from .rules import check_rules
    from .schemas import ARGO_KINDS, check_argo, check_core

    if not isinstance(doc, dict) or not doc.get("kind") or not doc.get("apiVersion"):
        return [("$", "not a Kubernetes object: needs apiVersion and kind", "structure")]
    kind, api = str(doc["kind"]), str(doc["apiVersion"])
    if api.startswith("kustomize.config.k8s.io/"):
        return _kustomization(doc, base)
    if kind in ARGO_KINDS and api.startswith("argoproj.io/"):
        spec_path = ("spec", "workflowSpec") if kind == "CronWorkflow" else ("spec",)
        spec = (doc.get("spec") or {}).get("workflowSpec") if kind == "CronWorkflow" else doc.get("spec")
        findings = check_argo(doc, schemas) + check_rules(doc, argo=True)
        if isinstance(spec, dict):
            findings += check_references(spec, spec_path)
    elif api.startswith("argoproj.io/"):
        return [("$.kind", f"Argo kind {kind!r} is not supported; expected one of {sorted(ARGO_KINDS)}", "structure")]
    else:
        findings = check_core(doc, kubernetes_version) + check_rules(doc, argo=False)
    return [(f.path, f.message, f.check) for f in findings]


def validate_files(
    paths: list[Path], schemas_dir: Path | None = None, kubernetes_version: str | None = None
) -> list[Problem]:
    """Every problem in ``paths``; raises SchemaDirError when an explicit ``schemas_dir`` is incomplete."""
    import yaml

    from .schemas import vendored_schemas

    schemas = vendored_schemas(schemas_dir)
    problems: list[Problem] = []
    for path in paths:
        try:
            docs = _load_documents(path)
        except OSError as exc:
            problems.append(Problem(str(path), None, "$", f"cannot read: {exc.strerror or exc}", "file"))
            continue
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problems.append(
                Problem(str(path), None, "$", f"invalid YAML: {where}{getattr(exc, 'problem', exc)}", "yaml")
            )
            continue
        if not docs:
            problems.append(Problem(str(path), None, "$", "no YAML documents in file", "file"))
        for index, doc in enumerate(docs):
            for json_path, message, check in validate_document(doc, schemas, path.parent, kubernetes_version):
                problems.append(Problem(str(path), index, json_path, message, check))
    return problems


def _run(args: argparse.Namespace) -> int:
    from .schemas import SchemaDirError, default_schemas_dir, hera_argo_version, vendored_schemas

    try:
        problems = validate_files(args.files, args.schemas, args.kubernetes_version)
        if vendored_schemas(args.schemas) is None:
            sys.stderr.write(
                f"note: no vendored Argo schema at {default_schemas_dir()}; Argo kinds were checked against "
                f"Hera's models of Argo {hera_argo_version()} only\n"
            )
    except SchemaDirError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    for problem in problems:
        sys.stderr.write(f"{problem}\n")
    if problems:
        files = len({p.file for p in problems})
        sys.stderr.write(f"INVALID: {len(problems)} problem(s) in {files} of {len(args.files)} file(s)\n")
        return 2
    sys.stderr.write(f"OK: {len(args.files)} file(s) valid\n")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``validate`` subcommand."""
    p = subparsers.add_parser(
        "validate",
        help="check manifests against the Argo schemas/CRDs, Kubernetes schemas and project rules",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="YAML manifests (multi-document allowed)")
    p.add_argument(
        "--schemas",
        type=Path,
        default=None,
        metavar="DIR",
        help="vendored Argo schema directory, an extra check besides Hera's models (default: $ARGO_SCHEMAS_DIR, "
        "else <repo>/../shared/argo, skipped when absent)",
    )
    p.add_argument(
        "--kubernetes-version",
        default=None,
        help="Kubernetes version for core kinds (default: the newest kubernetes-validate ships)",
    )
    p.set_defaults(handler=_run)
