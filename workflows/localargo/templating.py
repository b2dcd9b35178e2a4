"""``{{...}}`` substitution, as Argo does it: simple tags looked up in a flat scope.

Argo replaces tags in the JSON of a template with values from the scope that applies
(``workflow.*``, ``inputs.*``, ``tasks.*``, ``pod.name``, ``retries``, ...). Values are
inserted once and never re-scanned. Expression tags (``{{=...}}``) are refused: the
executor does not implement Argo's expr-lang templates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import ResolveError, Unsupported

__all__ = ["TAG", "substitute", "unresolved", "require_resolved"]

TAG = re.compile(r"\{\{(.*?)\}\}", re.S)


def _replace(text: str, scope: Mapping[str, str], where: str) -> str:
    def one(match: re.Match[str]) -> str:
        tag = match.group(1).strip()
        if tag.startswith("="):
            raise Unsupported(
                where,
                f"expression tag {match.group(0)!r} is not supported by the local executor "
                "(only simple tags such as {{inputs.parameters.x}})",
            )
        value = scope.get(tag)
        return match.group(0) if value is None else value

    return TAG.sub(one, text)


def substitute(value: Any, scope: Mapping[str, str], where: str = "") -> Any:
    """Return ``value`` (str, list, dict, nested) with every tag known to ``scope`` replaced.

    Unknown tags are left in place for a later scope (Argo resolves in stages: workflow,
    then inputs, then task outputs); call :func:`require_resolved` once all scopes applied.
    Dict keys are not substituted, as in Argo.
    """
    if isinstance(value, str):
        return _replace(value, scope, where) if "{{" in value else value
    if isinstance(value, list):
        return [substitute(v, scope, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: substitute(v, scope, f"{where}.{k}" if where else k) for k, v in value.items()}
    return value


def unresolved(value: Any, where: str = "") -> list[tuple[str, str]]:
    """Every ``(field, tag)`` still present in ``value``."""
    found: list[tuple[str, str]] = []
    if isinstance(value, str):
        found += [(where, m.group(0)) for m in TAG.finditer(value)]
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += unresolved(v, f"{where}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            found += unresolved(v, f"{where}.{k}" if where else k)
    return found


def require_resolved(value: Any, where: str, scope: Mapping[str, str]) -> None:
    """Raise :class:`ResolveError` naming each tag left in ``value``, with the names that were in scope."""
    left = unresolved(value, where)
    if not left:
        return
    field, tag = left[0]
    name = tag[2:-2].strip()
    prefix = name.rsplit(".", 1)[0] + "." if "." in name else name
    near = sorted(k for k in scope if k.startswith(prefix))[:12]
    hint = f"; known here: {', '.join(near)}" if near else ""
    more = f" (and {len(left) - 1} more)" if len(left) > 1 else ""
    raise ResolveError(f"{field}: cannot resolve {tag}{more}{hint}")
