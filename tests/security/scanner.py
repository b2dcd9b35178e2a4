"""Find credential values in text: keys, private keys, literal passwords/tokens, URLs with a password.

Pure functions over (path, text) so the rules are tested on planted examples before they
are trusted on the repository. A finding names the file, line and rule, and shows the
value only masked (a scanner that prints the secret it found is a leak of its own).

Placeholders are not credentials: ``${VAR}``, ``$(VAR)``, ``{{...}}``, ``<...>``,
``os.environ[...]`` and the like. Dummy values are allowed only under ``tests/`` and only
when they say so (``test-...``, ``dummy...``, ``fake...``, ``example...``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Finding", "scan_text", "scan_yaml_docs", "is_dummy", "mask"]

SECRET_NAME = re.compile(r"(pass(word|wd)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)", re.I)
"""Names (of env vars, keys, arguments) whose value is a credential."""

_PLACEHOLDER = re.compile(r"^(\$\{[^}]*\}|\$\([^)]*\)|\{\{[^}]*\}\}|<[^>]*>|%\([^)]*\)s|\*+|x+|\.\.\.)$", re.I)
"""Stand-ins, not values: ``${VAR}``, ``$(cmd)``, ``{{param}}``, ``<your-key>``, ``***``."""
_URL_WORDS = {"password", "passwd", "pass", "pw", "secret", "token"}
"""``scheme://user:password@host`` in docs and comments: the word itself stands in for the value."""
_DUMMY = re.compile(r"^(test|dummy|fake|example|placeholder|not-a-secret|unit-?test)([-_.a-z0-9]*)$", re.I)

_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("aws-access-key-id", re.compile(r"\b((?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16})\b")),
    ("private-key", re.compile(r"(-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----)")),
    ("github-token", re.compile(r"\b((?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})\b")),
    ("slack-token", re.compile(r"\b(xox[abprs]-[A-Za-z0-9-]{10,})\b")),
    ("jwt", re.compile(r"\b(eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})")),
    # scheme://user:password@host — the password part must not be a placeholder.
    ("url-with-password", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@'\"`]+:([^\s/@'\"`]+)@[^\s/'\"`]", re.I)),
    # name = "value" / name: 'value' / "name": "value" with a secret-ish name and a quoted literal.
    (
        "secret-assignment",
        re.compile(r"""(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)["']?\s*(?:=|:)\s*(?P<q>["'])(?P<value>[^"'\s]{4,})(?P=q)"""),
    ),
    # KEY=value lines (.env files, Dockerfile ENV, shell) with a secret-ish key and an unquoted literal.
    (
        "secret-env-line",
        re.compile(r"""^\s*(?:export\s+|ENV\s+)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>[^\s"'$]{4,})\s*$"""),
    ),
]


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str
    value: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule} ({mask(self.value)})"


def mask(value: str) -> str:
    """``ab…(12 chars)`` — enough to find it, not enough to use it."""
    return f"{value[:2]}…({len(value)} chars)"


def is_dummy(path: str, value: str, allow: frozenset[str] = frozenset()) -> bool:
    """A value that is clearly a test dummy (by its wording or listed in ``allow``), in a file under ``tests/``."""
    return path.startswith("tests/") and (bool(_DUMMY.match(value)) or value in allow)


def _is_placeholder(value: str) -> bool:
    v = value.strip()
    return bool(_PLACEHOLDER.match(v)) or v.startswith(("$", "{{", "os.environ", "env.", "ENV[")) or "{" in v


_BINARY_RULES = {"aws-access-key-id", "private-key", "github-token", "slack-token", "jwt"}
"""Rules precise enough to run on binary files (Parquet, gzip) decoded as latin-1."""

_OBJECT_REF = re.compile(r"(secret|secret_?name|secretname|ref)$", re.I)
_K8S_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+$")


def _names_a_secret_object(name: str, value: str) -> bool:
    """``POSTGRES_SECRET = "cybersec-mlops-postgres"``: the name of a Kubernetes Secret, not its value."""
    return bool(_OBJECT_REF.search(name)) and bool(_K8S_NAME.match(value))


def scan_text(path: str, text: str, binary: bool = False, allow: frozenset[str] = frozenset()) -> list[Finding]:
    """Every credential-looking value in ``text`` (the file at repository path ``path``).

    ``binary``: only the high-precision rules. ``allow``: exact dummy values tolerated under ``tests/``.
    """
    found = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        seen: set[str] = set()  # one finding per value: the first (most specific) rule wins
        for rule, pattern in _RULES:
            if binary and rule not in _BINARY_RULES:
                continue
            for m in pattern.finditer(line):
                if "name" in pattern.groupindex:
                    name, value = m.group("name"), m.group("value")
                    if not SECRET_NAME.search(name) or _names_a_secret_object(name, value):
                        continue
                else:
                    value = m.group(1)
                if rule == "url-with-password" and value.lower() in _URL_WORDS:
                    continue
                if value in seen or _is_placeholder(value) or is_dummy(path, value, allow):
                    continue
                seen.add(value)
                found.append(Finding(path, lineno, rule, value))
    return found


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def scan_yaml_docs(path: str, docs: list[Any]) -> list[Finding]:
    """Kubernetes/Argo rules: no literal env ``value`` for a secret-ish name, no Secret with data."""
    found = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "Secret":
            for field in ("data", "stringData"):
                for key, value in (doc.get(field) or {}).items():
                    if value and not _is_placeholder(str(value)) and not is_dummy(path, str(value)):
                        found.append(Finding(path, 0, f"secret-manifest-{field}", f"{key}={value}"))
        for node in _walk(doc):
            name, value = node.get("name"), node.get("value")
            if isinstance(name, str) and SECRET_NAME.search(name) and isinstance(value, str) and value.strip():
                if not _is_placeholder(value) and not is_dummy(path, value):
                    found.append(Finding(path, 0, "env-literal-secret", f"{name}={value}"))
    return found
