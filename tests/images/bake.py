"""Resolve docker-bake.hcl into ``docker build`` commands (there is no buildx here).

Reads the file with python-hcl2 (8.x keeps the quotes around strings and labels: they are
stripped), takes variable defaults (or explicit overrides, like ``BASE_IMAGE``), applies
``inherits`` in order the way bake does (scalars and lists replaced, ``args``/``labels``
merged key by key) and interpolates ``${VAR}``. Only the fields a local single-platform
build needs are resolved; an interpolation other than a variable in one of them is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BakeTarget", "resolve_bake", "build_command", "main"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MERGED = ("args", "labels")
_USED = ("context", "dockerfile", "tags", "args", "labels", "target")


@dataclass(frozen=True)
class BakeTarget:
    """One buildable target with everything interpolated."""

    name: str
    context: str
    dockerfile: str
    tags: list[str]
    args: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    stage: str | None = None
    """``target`` attribute: the Dockerfile stage to build (None: the last one)."""


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if k != "__is_block__"}
    return value


def _blocks(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for entry in doc.get(kind, []):
        for label, body in entry.items():
            out[_unquote(label)] = _unquote(body)
    return out


def _interpolate(path: Path, where: str, value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, list):
        return [_interpolate(path, where, v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(path, f"{where}.{k}", v, variables) for k, v in value.items()}
    if not isinstance(value, str):
        return value

    def expand(match: re.Match[str]) -> str:
        if match.group(1) not in variables:
            raise ValueError(f"{path}: {where} uses ${{{match.group(1)}}}, which is not a variable")
        return variables[match.group(1)]

    text = _VAR.sub(expand, value)
    if "${" in text:
        raise ValueError(f"{path}: {where} = {value!r}: only ${{VARIABLE}} interpolation is supported here")
    return text


def _flatten(path: Path, name: str, targets: dict[str, dict[str, Any]], seen: tuple[str, ...] = ()) -> dict[str, Any]:
    if name in seen:
        raise ValueError(f"{path}: inheritance cycle {' -> '.join((*seen, name))}")
    if name not in targets:
        raise ValueError(f"{path}: target {name!r} not found (targets: {sorted(targets)})")
    merged: dict[str, Any] = {}
    body = targets[name]
    for parent in body.get("inherits", []):
        for key, value in _flatten(path, parent, targets, (*seen, name)).items():
            merged[key] = {**merged.get(key, {}), **value} if key in _MERGED else value
    for key, value in body.items():
        if key == "inherits":
            continue
        merged[key] = {**merged.get(key, {}), **value} if key in _MERGED else value
    return merged


def resolve_bake(path: Path, group: str = "default", overrides: dict[str, str] | None = None) -> list[BakeTarget]:
    """The targets of ``group``, in the group's order, fully resolved."""
    import hcl2

    with path.open() as fh:
        doc = hcl2.load(fh)
    variables = {name: str(body.get("default", "")) for name, body in _blocks(doc, "variable").items()}
    unknown = set(overrides or {}) - set(variables)
    if unknown:
        raise ValueError(f"{path}: no variable(s) {sorted(unknown)} to override")
    variables.update(overrides or {})
    groups, targets = _blocks(doc, "group"), _blocks(doc, "target")
    if group not in groups:
        raise ValueError(f"{path}: group {group!r} not found (groups: {sorted(groups)})")
    out = []
    for name in groups[group].get("targets", []):
        flat = _flatten(path, name, targets)
        used = {k: _interpolate(path, f"target.{name}.{k}", flat[k], variables) for k in _USED if k in flat}
        if not used.get("dockerfile") or not used.get("tags"):
            raise ValueError(f"{path}: target {name!r} needs a dockerfile and at least one tag")
        out.append(
            BakeTarget(
                name=name,
                context=used.get("context", "."),
                dockerfile=used["dockerfile"],
                tags=list(used["tags"]),
                args=dict(used.get("args", {})),
                labels=dict(used.get("labels", {})),
                stage=used.get("target"),
            )
        )
    return out


def build_command(target: BakeTarget, repo: Path, network: str = "host") -> list[str]:
    """``docker build`` arguments equivalent to ``docker buildx bake <target>`` on this platform."""
    cmd = ["docker", "build", "--network", network, "-f", str(repo / target.dockerfile)]
    for tag in target.tags:
        cmd += ["-t", tag]
    for key, value in sorted(target.args.items()):
        cmd += ["--build-arg", f"{key}={value}"]
    for key, value in sorted(target.labels.items()):
        cmd += ["--label", f"{key}={value}"]
    if target.stage:
        cmd += ["--target", target.stage]
    cmd.append(str(repo / target.context))
    return cmd


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.images.bake [--set VAR=VALUE]... [--dry-run] [TARGET...]``: bake without buildx."""
    import argparse
    import shlex
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(
        prog="python -m tests.images.bake",
        description="Build docker-bake.hcl targets with plain `docker build` "
        "(for hosts without buildx), e.g. on the offline base image.",
    )
    parser.add_argument("targets", nargs="*", help="targets to build (default: the default group)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="VAR=VALUE",
        help="override a bake variable, e.g. BASE_IMAGE=cybersec-mlops-base:bookworm (repeatable)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the docker build commands only")
    args = parser.parse_args(argv)
    if any("=" not in item for item in args.overrides):
        parser.error("--set takes VAR=VALUE")
    overrides = dict(item.split("=", 1) for item in args.overrides)
    try:
        targets = resolve_bake(repo / "docker-bake.hcl", overrides=overrides)
    except ValueError as exc:
        parser.error(str(exc))
    unknown = set(args.targets) - {t.name for t in targets}
    if unknown:
        parser.error(f"unknown target(s) {sorted(unknown)}; default group: {[t.name for t in targets]}")
    for target in targets:
        if args.targets and target.name not in args.targets:
            continue
        cmd = build_command(target, repo)
        print("+ " + shlex.join(cmd), flush=True)
        if not args.dry_run and subprocess.run(cmd, cwd=repo).returncode != 0:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
