"""Image names and tags, read from ``docker-bake.hcl`` — the one place they are defined.

The compiled workflow, the submitter Job and the image tests all take their image
references from here, so a tag bumped in the bake file reaches every manifest on the
next ``python -m workflows compile`` (and the drift test fails until it does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BAKE_FILE", "BakeFile", "BakeError", "load_bake", "STAGES"]

BAKE_FILE = Path(__file__).resolve().parents[1] / "docker-bake.hcl"
STAGES = ("ingest", "silver", "train", "eval", "score")
"""The stages (training DAG order, then scoring); each has a bake target of the same name."""

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class BakeError(ValueError):
    """The bake file lacks something the manifests need (a variable, a target, a tag)."""


def _unquote(value: Any) -> Any:
    """python-hcl2 8.x keeps the double quotes around strings and block labels: strip them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _blocks(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """``{label: body}`` for every ``kind "label" { ... }`` block of the file."""
    out: dict[str, dict[str, Any]] = {}
    for entry in doc.get(kind, []):
        for label, body in entry.items():
            out[_unquote(label)] = body
    return out


@dataclass(frozen=True)
class BakeFile:
    """What the manifests need from the bake file: variable defaults and tag templates."""

    path: Path
    variables: dict[str, str]
    """Variable defaults, e.g. ``{"REGISTRY": "registry.local", "TAG": "0.1.0"}``."""
    tag_templates: dict[str, str]
    """First tag of each target, unexpanded: ``${REGISTRY}/cybersec-mlops-ingest:${TAG}``."""

    @property
    def registry(self) -> str:
        return self.variables["REGISTRY"]

    @property
    def tag(self) -> str:
        return self.variables["TAG"]

    def template(self, target: str) -> str:
        """The unexpanded tag template of ``target``; raises BakeError when it has none."""
        try:
            return self.tag_templates[target]
        except KeyError:
            raise BakeError(
                f"{self.path}: no target {target!r} with a tag; targets with tags: {sorted(self.tag_templates)}"
            ) from None

    def image(self, target: str, **overrides: str) -> str:
        """The full image reference of ``target`` with the variable defaults (or ``overrides``)."""
        values = {**self.variables, **overrides}

        def expand(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise BakeError(f"{self.path}: target {target!r} uses ${{{name}}}, which has no variable default")
            return values[name]

        return _VAR.sub(expand, self.template(target))

    def repository(self, target: str) -> str:
        """The image name without registry and tag, e.g. ``cybersec-mlops-ingest``."""
        template = self.template(target)
        prefix, sep, rest = template.partition("${REGISTRY}/")
        if prefix or not sep or not rest.endswith(":${TAG}"):
            raise BakeError(f"{self.path}: target {target!r} tag {template!r} is not '${{REGISTRY}}/<name>:${{TAG}}'")
        return rest[: -len(":${TAG}")]


def load_bake(path: Path = BAKE_FILE) -> BakeFile:
    """Parse ``path`` (HCL) into a BakeFile; raises BakeError naming the file on a gap."""
    try:
        import hcl2
    except ModuleNotFoundError:
        raise BakeError(
            f"{path}: reading the bake file needs python-hcl2 (pip install python-hcl2), or submit with --from-template"
        ) from None

    try:
        with path.open() as fh:
            doc = hcl2.load(fh)
    except FileNotFoundError:
        raise BakeError(f"{path}: bake file not found (it defines the image names and tags)") from None
    variables: dict[str, str] = {}
    for name, body in _blocks(doc, "variable").items():
        if "default" in body:
            variables[name] = str(_unquote(body["default"]))
    for required in ("REGISTRY", "TAG"):
        if not variables.get(required):
            raise BakeError(f"{path}: variable {required!r} needs a non-empty default")
    if variables["TAG"] == "latest":
        raise BakeError(f"{path}: TAG defaults to 'latest'; pin a version (images are never referenced as latest)")
    tags: dict[str, str] = {}
    for name, body in _blocks(doc, "target").items():
        target_tags = [_unquote(t) for t in body.get("tags", [])]
        if target_tags:
            tags[name] = target_tags[0]
    return BakeFile(path=path, variables=variables, tag_templates=tags)
