"""Every image installs exactly pinned versions, from its own lock file, and nothing else.

- each image's requirements.txt pins every package with ``==`` to one exact version (no
  ranges, wildcards, URLs, editable installs or extra indexes: no dependency confusion);
- the lock covers everything the stage's own code imports (third-party, including lazy
  imports and the stages/common modules it uses), so nothing is resolved at build time;
- each image's bake target builds a Dockerfile that installs only that lock through
  scripts/build-venv.sh, which installs with --no-deps (the lock is the whole closure) and
  wheels only (the stages share stages/Dockerfile, whose STAGE argument picks the lock).
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from tests.helpers import REPO
from tests.images.bake import resolve_bake

IMAGES = ["stages/ingest", "stages/silver", "stages/train", "stages/eval", "stages/score", "workflows"]
STAGES = [d for d in IMAGES if d.startswith("stages/")]
_EXACT = re.compile(r"^==\d+(\.\d+)*([a-z0-9.+-]*)$", re.I)


def requirement_lines(text: str) -> list[str]:
    """Requirement lines of a requirements file: comments, blanks and ``# via`` notes removed."""
    out = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def pin_problem(line: str) -> str | None:
    """Why ``line`` is not an exact pin (None when it is one)."""
    if line.startswith("-"):
        return "pip option in a lock file (index/editable/constraint options widen what gets installed)"
    try:
        req = Requirement(line.rstrip("\\").strip())
    except InvalidRequirement as exc:
        return f"not a requirement ({exc})"
    if req.url:
        return "installs from a URL"
    specs = list(req.specifier)
    if len(specs) != 1 or not _EXACT.match(str(specs[0])):
        return f"not pinned to one exact version with == ({req.specifier or 'no version'})"
    return None


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        ("numpy==2.4.6", True),
        ("certifi==2026.10.19.post1", True),
        ("hera[yaml]==7.1.0", True),
        ("pywin32==306 ; sys_platform == 'win32'", True),
        ("numpy>=2.0", False),
        ("numpy==2.*", False),
        ("numpy", False),
        ("numpy~=2.4", False),
        ("numpy==2.4.6,<3", False),
        ("pkg @ https://example.org/pkg-1.0.whl", False),
        ("-e git+https://example.org/repo.git#egg=pkg", False),
        ("--extra-index-url https://pypi.example.org/simple", False),
    ],
)
def test_pin_rule(line: str, ok: bool) -> None:
    assert (pin_problem(line) is None) is ok


@pytest.mark.parametrize("image", IMAGES)
def test_lock_file_pins_every_package_exactly(image: str) -> None:
    lock = REPO / image / "requirements.txt"
    assert lock.is_file(), f"{image}: no requirements.txt (the image would install unpinned versions)"
    lines = requirement_lines(lock.read_text(encoding="utf-8"))
    assert len(lines) >= 3
    problems = [f"{image}/requirements.txt: {line!r}: {p}" for line in lines if (p := pin_problem(line))]
    assert problems == []
    names = [canonicalize_name(Requirement(line).name) for line in lines]
    assert len(names) == len(set(names)), f"{image}: a package is pinned twice"
    src = REPO / image / "requirements.in"
    if src.is_file():
        wanted = {canonicalize_name(Requirement(r).name) for r in requirement_lines(src.read_text(encoding="utf-8"))}
        assert wanted <= set(names), f"{image}: requirements.in entries missing from the lock: {wanted - set(names)}"


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_installs_only_its_lock(image: str) -> None:
    name = "submitter" if image == "workflows" else image.removeprefix("stages/")
    target = next(t for t in resolve_bake(REPO / "docker-bake.hcl") if t.name == name)
    dockerfile = (REPO / target.dockerfile).read_text(encoding="utf-8")
    # The lock the Dockerfile copies, with the target's build arguments filled in.
    copied = re.search(r"^COPY .*?(\S+/requirements\.txt)", dockerfile, re.M)
    assert copied, f"{target.dockerfile}: no COPY of a requirements.txt"
    lock = re.sub(r"\$\{(\w+)\}", lambda m: target.args.get(m.group(1), m.group(0)), copied.group(1))
    assert lock == f"{image}/requirements.txt"
    assert "build-venv.sh /build/requirements.txt" in dockerfile
    run_lines = [ln for ln in dockerfile.splitlines() if ln.lstrip().upper().startswith("RUN")]
    assert not [ln for ln in run_lines if re.search(r"\bpip3?\b|\bpip install\b", ln)], "pip outside build-venv.sh"
    script = (REPO / "scripts" / "build-venv.sh").read_text(encoding="utf-8")
    assert "--no-deps" in script and "--only-binary=:all:" in script and "pip check" in script


def _imports(path: Path, package: str) -> set[str]:
    """Absolute module names imported anywhere in ``path`` (relative imports resolved in ``package``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
                found.add(module)
                found |= {f"{module}.{a.name}" for a in node.names}
            elif node.module:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def third_party_imports(stage_dir: str) -> set[str]:
    """Top-level third-party modules the stage's code and the stages/common modules it uses import."""
    todo = [p for p in (REPO / stage_dir).rglob("*.py")]
    seen: set[Path] = set()
    top: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
        for name in _imports(path, package):
            if name.startswith("stages.common."):
                module = REPO / Path(*name.split(".")[:3]).with_suffix(".py")
                if module.is_file():
                    todo.append(module)
            root = name.split(".")[0]
            if root not in sys.stdlib_module_names and root not in ("stages", "workflows", "__future__"):
                top.add(root)
    return top


@pytest.mark.parametrize("stage", STAGES)
def test_lock_covers_everything_the_stage_imports(stage: str) -> None:
    lines = requirement_lines((REPO / stage / "requirements.txt").read_text(encoding="utf-8"))
    locked = {canonicalize_name(Requirement(line).name) for line in lines}
    dists = packages_distributions()
    imported = third_party_imports(stage)
    assert {"pyarrow", "psycopg2", "boto3"} <= imported  # the shared core was followed
    missing = {}
    for module in sorted(imported):
        providers = {canonicalize_name(d) for d in dists.get(module, [])}
        assert providers, f"{stage}: imports {module!r}, which no installed distribution provides"
        if not providers & locked:
            missing[module] = sorted(providers)
    assert missing == {}, f"{stage}: imported but not in {stage}/requirements.txt: {missing}"
