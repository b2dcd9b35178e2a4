"""What the executor refuses that only shows in values, found before anything runs.

``policy`` refuses fields by name. Some refusals depend on a field's value: a ``{{=...}}``
expression tag, a script language, a retry or ``when`` expression beyond the supported
subset, a ``fieldRef`` the executor cannot fill, and, for the subprocess runtime, a template
without ``command``, a path it cannot map to the sandbox, or a mapped path inside a larger
argument, env value or script (a path or data: it cannot tell, so it never rewrites them).
Found when a task started, they failed the run (exit 1) after earlier tasks had already run;
:func:`refusals` lists them all up front so ``run-local`` exits 2 naming each field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from .errors import Unsupported
from .expr import check_retry, check_when
from .runtimes.subprocess_runtime import UNMAPPABLE, mentions, unmappable
from .templating import TAG

__all__ = ["SCRIPT_LANGS", "SOURCE_PATHS", "FIELD_REFS", "refusals"]

SCRIPT_LANGS = ("python", "python3", "sh", "bash")
FIELD_REFS = ("metadata.name", "metadata.namespace", "status.podIP")
SOURCE_PATHS = (
    "the script mentions a mapped container path; the subprocess runtime does not rewrite code: "
    "take the path from an env value or use --runtime docker"
)
MAPPED = ("/tmp/inputs", "/tmp/outputs")
"""Container paths the subprocess runtime maps to the sandbox, besides each emptyDir mountPath."""


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string under ``value`` with its field path; list items named by their ``name`` when they have one."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from _strings(sub, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            name = item.get("name") if isinstance(item, dict) else None
            yield from _strings(item, f"{path}[{name if name else i}]")


def _mapped(path: str, roots: list[str]) -> bool:
    literal = TAG.split(path)[0]  # a tag may add to the path, not move it out of a mapped root
    if literal != path:
        literal = literal.rpartition("/")[0]
    return any(literal == r or literal.startswith(r.rstrip("/") + "/") for r in roots)


def _template(t: dict[str, Any], where: str, runtime: str | None) -> Iterator[tuple[str, str]]:
    kind = "script" if "script" in t else "container" if "container" in t else None
    retry = t.get("retryStrategy") or {}
    if retry.get("expression") and not TAG.search(str(retry["expression"])):
        try:
            check_retry(str(retry["expression"]), f"{where}.retryStrategy.expression")
        except Unsupported as exc:
            yield exc.field, exc.reason
    for i, task in enumerate((t.get("dag") or {}).get("tasks") or []):
        if task.get("when"):
            try:
                check_when(str(task["when"]), f"{where}.dag.tasks[{task.get('name', i)}].when")
            except Unsupported as exc:
                yield exc.field, exc.reason
    if kind is None:
        return
    c = t[kind]
    command = [str(x) for x in c.get("command") or []]
    if kind == "script" and (not command or PurePosixPath(command[0]).name not in SCRIPT_LANGS):
        yield f"{where}.script.command", f"{command[:1]} is not a supported script language ({', '.join(SCRIPT_LANGS)})"
    for e in c.get("env") or []:
        ref = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if ref is not None and ref not in FIELD_REFS:
            yield (
                f"{where}.{kind}.env[{e.get('name')}].valueFrom.fieldRef",
                f"{ref!r} is not known locally ({', '.join(FIELD_REFS)})",
            )
    if runtime != "subprocess":
        return
    if not command:
        yield (
            f"{where}.{kind}.command",
            ("the subprocess runtime needs the command (an image's entrypoint is unknown here); use --runtime docker"),
        )
    roots = [*MAPPED, *(str(vm.get("mountPath", "")) for vm in c.get("volumeMounts") or [])]
    values = [(f"command[{i}]", x) for i, x in enumerate(command)]
    values += [(f"args[{i}]", str(x)) for i, x in enumerate(c.get("args") or [])]
    values += [(f"env[{e.get('name')}].value", str(e["value"])) for e in c.get("env") or [] if "value" in e]
    for field, value in values:
        if unmappable(value, roots):
            yield f"{where}.{kind}.{field}", UNMAPPABLE
    if kind == "script" and mentions(str(c.get("source", "")), roots):
        yield f"{where}.script.source", SOURCE_PATHS
    paths = [
        (f"inputs.artifacts[{a.get('name')}].path", a.get("path"))
        for a in (t.get("inputs") or {}).get("artifacts") or []
    ]
    outputs = t.get("outputs") or {}
    paths += [(f"outputs.artifacts[{a.get('name')}].path", a.get("path")) for a in outputs.get("artifacts") or []]
    paths += [
        (f"outputs.parameters[{p.get('name')}].valueFrom.path", (p.get("valueFrom") or {}).get("path"))
        for p in outputs.get("parameters") or []
    ]
    for field, path in paths:
        if path and not _mapped(str(path), roots):
            yield (
                f"{where}.{field}",
                (
                    f"{path} is outside /tmp/inputs, /tmp/outputs and the template's volume mounts, so the "
                    "subprocess runtime cannot map it to the sandbox; use --runtime docker"
                ),
            )


def refusals(spec: dict[str, Any], runtime: str | None) -> list[tuple[str, str]]:
    """``(field, reason)`` of every value-level refusal in ``spec``; ``runtime`` adds that runtime's own."""
    found = [
        (field, f"expression tag {m.group(0)!r} is not supported by the local executor (only simple tags)")
        for field, text in _strings(spec, "spec")
        for m in TAG.finditer(text)
        if m.group(1).strip().startswith("=")
    ]
    for t in spec.get("templates") or []:
        found += _template(t, f"spec.templates[{t.get('name')}]", runtime)
    return found
