"""Template ``memoize``: Argo's ConfigMap cache, kept in a local file.

On the cluster a memoized template looks its evaluated ``memoize.key`` up in the ConfigMap
``memoize.cache.configMap.name`` of the workflow's namespace. Locally that ConfigMap is the
file ``<workdir>/_configmaps/<namespace>/<name>.json`` (``<workdir>`` is ``--workdir``,
which holds every run; ``_`` keeps it apart from run directories, whose names cannot contain
one). It has a ConfigMap's shape and entries — ``data[key]`` is the JSON of Argo's cache
entry ``{nodeID, outputs, creationTimestamp, lastHitTimestamp}`` — and the label
``workflows.argoproj.io/configmap-type: Cache`` without which Argo refuses to use it.

As in Argo's controller: the key must match ``^[a-zA-Z0-9][-a-zA-Z0-9]*$`` (else the node
is an Error); an entry is a hit when it exists and, with ``maxAge`` (a Go duration such as
``180s``, ``24h``), was created at most that long ago; a hit node runs no pod, is
Succeeded with the cached outputs (parameters, result, and artifact references — the
artifacts themselves are not copied) and reports ``memoizationStatus: {hit: true, key,
cacheName}``; a miss runs and, only if it Succeeded, saves its outputs under the key. The
key alone identifies an entry in its ConfigMap: two templates sharing a cache and a key
share the entry, as on the cluster.
"""

from __future__ import annotations

import fcntl
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ResolveError
from .status import ArtifactRef, Node, Phase, write_json
from .templating import require_resolved, substitute

__all__ = ["Memo", "parse_duration", "cache_path"]

KEY = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
LABEL = "workflows.argoproj.io/configmap-type"
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_LOCK = threading.Lock()


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds (``1h30m``, ``1.5h``, ``300ms``, ``0``)."""
    s = text.strip()
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    if s == "0":
        return 0.0
    if not s or _PART.sub("", s):
        raise ValueError(f"time: invalid duration {text!r}")
    return sign * sum(float(n) * _UNITS[u] for n, u in _PART.findall(s))


def cache_path(workdir: Path, namespace: str, name: str) -> Path:
    return workdir / "_configmaps" / namespace / f"{name}.json"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _parse_iso(text: str) -> float:
    import calendar

    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time: threads of this run, and other runs sharing the workdir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK, open(path.with_suffix(".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _outputs(node: Node) -> dict[str, Any]:
    """The node's outputs as Argo's wfv1.Outputs JSON (artifact references, not their data)."""
    out: dict[str, Any] = {}
    if node.parameters:
        out["parameters"] = [{"name": k, "value": v} for k, v in node.parameters.items()]
    if node.artifacts:
        out["artifacts"] = [
            {
                "name": a.name,
                "s3": {"key": a.key, **({"bucket": a.bucket} if a.bucket else {})},
                **({"archive": {"none": {}}} if a.archived is False else {}),
                **({"archive": {"tar": {}}} if a.archived else {}),
                "uri": a.uri,
            }
            for a in node.artifacts.values()
        ]
    if node.result is not None:
        out["result"] = node.result
    if node.exit_code is not None:
        out["exitCode"] = str(node.exit_code)
    return out


def _restore(node: Node, outputs: dict[str, Any]) -> None:
    node.parameters = {p["name"]: str(p.get("value", "")) for p in outputs.get("parameters") or []}
    node.artifacts = {}
    for a in outputs.get("artifacts") or []:
        archive = a.get("archive") or {}
        archived = False if "none" in archive else True if "tar" in archive else None
        s3 = a.get("s3") or {}
        node.artifacts[a["name"]] = ArtifactRef(a["name"], s3["key"], s3.get("bucket"), archived, a.get("uri", ""))
    node.result = outputs.get("result")
    node.exit_code = int(outputs["exitCode"]) if outputs.get("exitCode") not in (None, "") else None


@dataclass
class Memo:
    key: str
    cache: str
    max_age: float | None
    path: Path

    @classmethod
    def of(cls, template: dict[str, Any], scope: dict[str, str], workdir: Path, namespace: str) -> Memo | None:
        """The template's evaluated ``memoize``, or None; raises :class:`ResolveError` on a bad one."""
        raw = template.get("memoize")
        if not raw:
            return None
        where = f"spec.templates[{template['name']}].memoize"
        spec = substitute(raw, scope, where)
        require_resolved(spec, where, scope)
        key = str(spec.get("key", ""))
        if not KEY.match(key):
            raise ResolveError(f"{where}.key: invalid cache key: {key}")
        name = str(((spec.get("cache") or {}).get("configMap") or {}).get("name") or "")
        if not name:
            raise ResolveError(f"{where}.cache.configMap.name: required")
        max_age = None
        if spec.get("maxAge"):
            try:
                max_age = parse_duration(str(spec["maxAge"]))
            except ValueError as exc:
                raise ResolveError(f"{where}.maxAge: invalid maxAge: {exc}") from None
        return cls(key, name, max_age, cache_path(workdir, namespace, name))

    def status(self, hit: bool) -> dict[str, Any]:
        return {"hit": hit, "key": self.key, "cacheName": self.cache}

    def _read(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ResolveError(f"{self.path}: cannot read the cache ConfigMap ({exc})") from None
        if not isinstance(doc, dict) or (doc.get("metadata") or {}).get("labels", {}).get(LABEL) != "Cache":
            raise ResolveError(
                f"{self.path}: memoization configmap doesn't have label {LABEL} = Cache, refusing to use it"
            )
        return dict(doc)

    def load(self, node: Node) -> bool:
        """On a hit fill ``node`` (Succeeded, cached outputs, memoizationStatus) and return True."""
        with _locked(self.path):
            doc = self._read()
            raw = ((doc or {}).get("data") or {}).get(self.key)
            if not doc or not raw:
                node.memoization = self.status(False)
                return False
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ResolveError(f"{self.path}: data[{self.key}]: malformed cache entry: {exc}") from None
            entry["lastHitTimestamp"] = _iso(time.time())
            doc["data"][self.key] = json.dumps(entry, sort_keys=True)
            write_json(self.path, doc)
        hit = bool(entry.get("nodeID"))
        if hit and self.max_age is not None:
            hit = time.time() - _parse_iso(entry["creationTimestamp"]) <= self.max_age
        node.memoization = self.status(hit)
        if hit:
            _restore(node, entry.get("outputs") or {})
            node.finish(Phase.SUCCEEDED)
        return hit

    def save(self, node: Node) -> None:
        """After a miss: keep a Succeeded node's outputs under the key."""
        if node.phase != Phase.SUCCEEDED:
            return
        now = _iso(time.time())
        entry = {"nodeID": node.id, "outputs": _outputs(node), "creationTimestamp": now, "lastHitTimestamp": now}
        with _locked(self.path):
            doc = self._read() or {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": self.cache}}
            doc["metadata"]["labels"] = {LABEL: "Cache"}
            doc.setdefault("data", {})[self.key] = json.dumps(entry, sort_keys=True)
            write_json(self.path, doc)
