"""The executor package stands alone: no import of the pipeline, no mention of the project.

``workflows/localargo`` must run any Argo manifest without knowing this repository; what is
specific to it (the workspace, defaults, how images are built) comes in through
``RunOptions``/``RunLocalDefaults`` from ``workflows/local``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PACKAGE = REPO / "workflows" / "localargo"
NAME = "workflows.localargo"


def _sources() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 15, files  # the whole package, not an empty glob
    return files


def _module(path: Path) -> list[str]:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _outside_imports(path: Path, text: str | None = None) -> list[str]:
    """Every import in ``path`` (or ``text`` as if it were there), at any depth, that leaves the package."""
    tree = ast.parse(path.read_text() if text is None else text, filename=str(path))
    package = _module(path) if path.name == "__init__.py" else _module(path)[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names = [".".join([*base, node.module] if node.module else base)]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            root = name.split(".")[0]
            inside = name == NAME or name.startswith(NAME + ".")
            if root in {"stages", "workflows", "tests", "benchmarks"} and not inside:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
    return found


def test_executor_imports_nothing_of_the_pipeline() -> None:
    found = [hit for path in _sources() for hit in _outside_imports(path)]
    assert found == []


def test_the_check_sees_imports_that_leave_the_package() -> None:
    # The detector itself, on text placed (not written) at runtimes/base.py: a relative import
    # climbing out of the package and a nested absolute one are caught; imports inside are not.
    text = (
        "from .subprocess_runtime import X\n"
        "from ..errors import E\n"
        "from ...compile import main\n"
        "def f():\n"
        "    from stages.common import logs\n"
        "    import workflows.localargo.dag\n"
    )
    hits = _outside_imports(PACKAGE / "runtimes" / "base.py", text)
    assert [h.split(": ")[1] for h in hits] == ["workflows.compile", "stages.common"]


def test_executor_never_names_the_project() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]
    words = {project, *project.split("-")[:2]}  # cybersec-mlops-pipeline → also cybersec, mlops
    hits = [
        f"{path.relative_to(REPO)}:{n}: {word}"
        for path in _sources()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        for word in words
        if word.lower() in line.lower()
    ]
    assert hits == []


def test_importing_every_executor_module_loads_no_pipeline_module() -> None:
    modules = [".".join(_module(p)) for p in _sources()]
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    assert NAME + ".engine" in loaded and NAME + ".runtimes.docker_runtime" in loaded
    foreign = [
        m
        for m in loaded
        if m.split(".")[0] in {"stages", "workflows", "tests", "benchmarks"}
        and m != "workflows"
        and not (m == NAME or m.startswith(NAME + "."))
    ]
    assert foreign == []
