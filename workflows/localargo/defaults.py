"""``spec.templateDefaults`` merged into every template, as Argo does before running one.

Argo applies the defaults with a Kubernetes strategic merge patch (the template is the
patch, so its values win): objects merge key by key; a list whose field the Argo and
Kubernetes types mark ``patchStrategy: merge`` merges item by item on its merge key (env
by ``name``, volumeMounts by ``mountPath``, ...: the defaults' items first, the template's
new ones after); any other list, and any scalar, is the template's when it has one. The
template then keeps its own type only (Argo's ``Template.SetType``): a dag template does
not become a container because the defaults hold container fields.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["MERGE_KEYS", "TEMPLATE_TYPES", "merge_template", "apply_template_defaults"]

MERGE_KEYS = {
    "env": "name",
    "volumes": "name",
    "initContainers": "name",
    "sidecars": "name",
    "parameters": "name",
    "artifacts": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
}
"""List fields merged item by item, and their merge key (the types' ``patchMergeKey``)."""

TEMPLATE_TYPES = (
    "container",
    "script",
    "dag",
    "steps",
    "resource",
    "data",
    "suspend",
    "containerSet",
    "http",
    "plugin",
)


def _merge(default: Any, value: Any, field: str = "") -> Any:
    if isinstance(default, dict) and isinstance(value, dict):
        out = dict(default)
        for key, sub in value.items():
            out[key] = _merge(default[key], sub, key) if key in default else sub
        return out
    key = MERGE_KEYS.get(field)
    if key and isinstance(default, list) and isinstance(value, list):
        merged = [dict(item) for item in default]
        index = {item.get(key): i for i, item in enumerate(merged)}
        for item in value:
            if item.get(key) in index:
                merged[index[item.get(key)]] = _merge(merged[index[item.get(key)]], item)
            else:
                merged.append(item)
        return merged
    return value


def merge_template(defaults: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    """``template`` with ``defaults`` merged in (a new dict; neither argument changes)."""
    merged: dict[str, Any] = _merge(copy.deepcopy(defaults), copy.deepcopy(template))
    for kind in TEMPLATE_TYPES:
        if kind in merged and kind not in template:
            del merged[kind]
    return merged


def apply_template_defaults(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``spec.templateDefaults`` merged into each of ``spec.templates`` and removed."""
    spec = doc.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("templateDefaults"), dict):
        return doc
    defaults = spec["templateDefaults"]
    templates = [merge_template(defaults, t) if isinstance(t, dict) else t for t in spec.get("templates") or []]
    rest = {k: v for k, v in spec.items() if k != "templateDefaults"}
    return {**doc, "spec": {**rest, "templates": templates}}
