"""Parameterised SQL only: no query text built from values in stages/ or workflows/.

AST-based: a call ``<anything>.execute(q, ...)`` / ``.executemany(q, ...)`` is a finding
when ``q`` is an f-string, a ``%`` or ``+`` expression, a ``.format(...)`` call, or a
local name assigned one of those in the same function. ``psycopg2.sql.SQL(...).format``
(identifier-safe composition) is allowed. One exception is listed explicitly.
"""

from __future__ import annotations

import ast
import textwrap

import pytest

from tests.helpers import REPO

ALLOWED = {
    # CREATE DATABASE takes no bind parameters; the name is the dev sandbox's own constant.
    ("workflows/local/services.py", 'CREATE DATABASE "{self.database}"'),
}
"""(path, text of the query argument) pairs reviewed and accepted."""


def _built(node: ast.expr) -> bool:
    """True when ``node`` builds text from values (as opposed to a literal or a safe composition)."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return not (isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        receiver = node.func.value
        is_sql_compose = (
            isinstance(receiver, ast.Call)
            and isinstance(receiver.func, ast.Attribute | ast.Name)
            and (receiver.func.attr if isinstance(receiver.func, ast.Attribute) else receiver.func.id) == "SQL"
        )
        return not is_sql_compose
    return False


def _assignments(scope: ast.AST) -> dict[str, list[ast.expr]]:
    found: dict[str, list[ast.expr]] = {}
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found.setdefault(target.id, []).append(node.value)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name) and node.value:
            value = node.value if isinstance(node, ast.AnnAssign) else ast.BinOp(node.target, node.op, node.value)
            found.setdefault(node.target.id, []).append(value)
    return found


def unsafe_sql_calls(source: str, path: str) -> list[tuple[int, str]]:
    """(line, query text) of every execute call whose query is built from values."""
    tree = ast.parse(source, filename=path)
    scopes = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)]
    local = {id(call): scope for scope in [tree, *scopes] for call in ast.walk(scope)}  # innermost scope wins
    findings = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("execute", "executemany")
            and node.args
        ):
            continue
        query = node.args[0]
        suspects = [query]
        if isinstance(query, ast.Name):
            suspects = _assignments(local[id(node)]).get(query.id, [])
        for expr in suspects:
            if _built(expr):
                findings.append((node.lineno, ast.unparse(expr)))
    return findings


@pytest.mark.parametrize(
    ("code", "unsafe"),
    [
        ('cur.execute(f"SELECT * FROM t WHERE id = {x}")', True),
        ('cur.execute("SELECT * FROM t WHERE id = %s" % x)', True),
        ('cur.execute("SELECT * FROM t WHERE id = " + x)', True),
        ('cur.execute("SELECT * FROM t WHERE id = {}".format(x))', True),
        ('q = f"DELETE FROM t WHERE id = {x}"\ncur.execute(q)', True),
        ('q = "SELECT 1"\nq += x\ncur.execute(q)', True),
        ('self._conn.cursor().executemany(f"INSERT INTO {t} VALUES (%s)", rows)', True),
        ('cur.execute("SELECT * FROM t WHERE id = %s", (x,))', False),
        ('cur.execute("SELECT a " "FROM t WHERE id = %s", (x,))', False),
        ('cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))', False),
        ('q = "SELECT 1"\ncur.execute(q)', False),
        ('cur.execute(f"SELECT 1")', False),
    ],
)
def test_detector(code: str, unsafe: bool) -> None:
    source = "def f(cur, x, rows, sql, name, t):\n" + textwrap.indent(code, "    ") + "\n"
    assert bool(unsafe_sql_calls(source, "x.py")) is unsafe


def test_only_parameterised_sql_in_stages_and_workflows() -> None:
    files = sorted([*REPO.glob("stages/**/*.py"), *REPO.glob("workflows/**/*.py")])
    assert any(p.name == "audit.py" for p in files)
    executes = 0
    findings = []
    for path in files:
        rel = path.relative_to(REPO).as_posix()
        source = path.read_text(encoding="utf-8")
        executes += source.count(".execute(")
        for line, query in unsafe_sql_calls(source, rel):
            if not any(rel == p and text in query for p, text in ALLOWED):
                findings.append(f"{rel}:{line}: query built from values: {query[:120]}")
    assert executes >= 10  # the audit's queries were really looked at
    assert findings == [], "use bind parameters (%s + a tuple) or psycopg2.sql for identifiers:\n" + "\n".join(findings)


def test_the_allowed_exception_still_exists() -> None:
    """An allowlist entry that no longer matches anything must be removed, not kept as a blank cheque."""
    for rel, text in ALLOWED:
        path = REPO / rel
        assert any(text in q for _, q in unsafe_sql_calls(path.read_text(encoding="utf-8"), rel)), (rel, text)
