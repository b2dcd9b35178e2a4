"""The three small expression languages of a DAG, evaluated on a subset that is refused beyond.

- ``depends`` (Argo's task-result logic): ``A``, ``A.Succeeded``, ``A.Failed``, ``A.Errored``,
  ``A.Skipped``, ``A.Omitted``, ``A.Daemoned``, ``A.AnySucceeded``, ``A.AllFailed``, ``&&``, ``||``,
  ``!`` and parentheses. A bare ``A`` means ``A.Succeeded || A.Skipped || A.Daemoned`` (plus
  ``A.Errored``/``A.Failed`` when A has ``continueOn.error``/``failed``), exactly as Argo expands it.
- ``when`` (govaluate, after ``{{...}}`` substitution): numbers, quoted strings, ``true``/``false``,
  bare words (compared as strings, Argo's own quirk), ``== != < > <= >= =~ !~ && || !`` and parentheses.
- ``retryStrategy.expression`` (expr-lang): ``lastRetry.exitCode|status|duration|message`` (strings),
  ``asInt()``, ``asFloat()``, literals, ``[..]`` lists with ``in``, comparisons, ``&& || !``
  (also ``and or not``) and parentheses.

Anything else (arithmetic, other functions, member access) raises :class:`Unsupported`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ResolveError, Unsupported

__all__ = [
    "TASK_RESULTS",
    "check_retry",
    "check_when",
    "depends_tasks",
    "eval_depends",
    "eval_when",
    "eval_retry",
    "expand_dependencies",
]

TASK_RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed")

_SPEC = {
    "depends": [("IDENT", r"[A-Za-z0-9][-A-Za-z0-9]*(?:\.[A-Z][A-Za-z]+)?")],
    "when": [("NUM", r"\d+(?:\.\d+)?"), ("IDENT", r"[A-Za-z_][A-Za-z0-9_.]*")],
    "retry": [("NUM", r"\d+(?:\.\d+)?"), ("IDENT", r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")],
}
_COMMON = [
    ("WS", r"\s+"),
    ("STR", r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"),
    ("OP", r"&&|\|\||==|!=|<=|>=|=~|!~|[<>!(),\[\]]"),
]


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokens(text: str, lang: str, field: str) -> list[_Tok]:
    spec = _COMMON[:2] + _SPEC[lang] + _COMMON[2:]
    pattern = re.compile("|".join(f"(?P<{k}>{p})" for k, p in spec))
    pos, out = 0, []
    while pos < len(text):
        m = pattern.match(text, pos)
        if m is None:
            hint = " (wrap values with '-' or spaces in quotes)" if lang == "when" else ""
            raise Unsupported(field, f"cannot parse {text!r} at column {pos + 1} ({text[pos : pos + 12]!r}){hint}")
        kind = m.lastgroup or ""
        if kind != "WS":
            word = m.group(0)
            if kind == "IDENT" and lang == "retry" and word in ("and", "or", "not", "in"):
                kind, word = "OP", {"and": "&&", "or": "||", "not": "!"}.get(word, word)
            out.append(_Tok(kind, word, pos))
        pos = m.end()
    out.append(_Tok("END", "", pos))
    return out


class _Parser:
    """Precedence climbing: ``||`` < ``&&`` < comparison < unary ``!`` < primary."""

    def __init__(self, text: str, lang: str, field: str) -> None:
        self.text, self.lang, self.field = text, lang, field
        self.toks = _tokens(text, lang, field)
        self.i = 0

    def fail(self, what: str) -> Unsupported:
        tok = self.toks[self.i]
        return Unsupported(self.field, f"{what} in {self.text!r} at column {tok.pos + 1}")

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self, text: str | None = None) -> _Tok:
        tok = self.toks[self.i]
        if text is not None and tok.text != text:
            raise self.fail(f"expected {text!r}, found {tok.text or 'end'!r}")
        self.i += 1
        return tok

    def parse(self) -> tuple[Any, ...]:
        node = self.or_()
        if self.peek().kind != "END":
            raise self.fail(f"unexpected {self.peek().text!r}")
        return node

    def or_(self) -> tuple[Any, ...]:
        node = self.and_()
        while self.peek().text == "||":
            self.take()
            node = ("or", node, self.and_())
        return node

    def and_(self) -> tuple[Any, ...]:
        node = self.cmp()
        while self.peek().text == "&&":
            self.take()
            node = ("and", node, self.cmp())
        return node

    def cmp(self) -> tuple[Any, ...]:
        node = self.unary()
        if self.peek().text in ("==", "!=", "<", ">", "<=", ">=", "=~", "!~", "in"):
            op = self.take().text
            if self.lang == "depends":
                raise self.fail(f"operator {op!r} is not part of Argo's depends logic")
            node = ("cmp", op, node, self.unary())
        return node

    def unary(self) -> tuple[Any, ...]:
        if self.peek().text == "!":
            self.take()
            return ("not", self.unary())
        return self.primary()

    def primary(self) -> tuple[Any, ...]:
        tok = self.peek()
        if tok.text == "(":
            self.take()
            node = self.or_()
            self.take(")")
            return node
        if tok.kind == "IDENT":
            self.take()
            if self.peek().text == "(":
                return self.call(tok.text)
            return ("var", tok.text)
        if tok.kind in ("NUM", "STR") and self.lang != "depends":
            self.take()
            if tok.kind == "STR":
                return ("lit", re.sub(r"\\(.)", r"\1", tok.text[1:-1]))
            return ("lit", float(tok.text) if "." in tok.text or self.lang == "when" else int(tok.text))
        if tok.text == "[" and self.lang == "retry":
            self.take()
            items = []
            while self.peek().text != "]":
                items.append(self.or_())
                if self.peek().text == ",":
                    self.take()
            self.take("]")
            return ("list", items)
        raise self.fail(f"unexpected {tok.text or 'end of expression'!r}")

    def call(self, name: str) -> tuple[Any, ...]:
        if self.lang != "retry" or name not in ("asInt", "asFloat"):
            raise self.fail(f"function {name!r} is not supported (retry expressions know asInt, asFloat)")
        self.take("(")
        arg = self.or_()
        self.take(")")
        return ("call", name, arg)


def _parse(text: str, lang: str, field: str) -> tuple[Any, ...]:
    if not text.strip():
        raise Unsupported(field, "empty expression")
    return _Parser(text, lang, field).parse()


# -- depends ---------------------------------------------------------------------------


def depends_tasks(depends: str, field: str) -> list[str]:
    """The task names ``depends`` refers to, in order of first appearance; checks result names."""
    names: list[str] = []

    def walk(node: tuple[Any, ...]) -> None:
        if node[0] == "var":
            task, _, result = node[1].partition(".")
            if result and result not in TASK_RESULTS:
                raise Unsupported(field, f"task result {result!r} of {task!r} is not one of {', '.join(TASK_RESULTS)}")
            if task not in names:
                names.append(task)
        else:
            for child in node[1:]:
                if isinstance(child, tuple):
                    walk(child)

    walk(_parse(depends, "depends", field))
    return names


def eval_depends(
    depends: str,
    results: Callable[[str], Mapping[str, bool]],
    continue_on: Callable[[str], tuple[bool, bool]],
    field: str,
) -> bool:
    """Evaluate ``depends`` given each task's results (``{"Succeeded": bool, ...}``).

    ``continue_on(task)`` is ``(error, failed)`` from the task's ``continueOn``, used to
    expand a bare task name exactly like Argo's ``expandDependency``.
    """

    def ev(node: tuple[Any, ...]) -> bool:
        kind = node[0]
        if kind == "or":
            return ev(node[1]) or ev(node[2])
        if kind == "and":
            return ev(node[1]) and ev(node[2])
        if kind == "not":
            return not ev(node[1])
        if kind == "var":
            task, _, result = node[1].partition(".")
            res = results(task)
            if result:
                return bool(res[result])
            error, failed = continue_on(task)
            return bool(
                res["Succeeded"]
                or res["Skipped"]
                or res["Daemoned"]
                or (error and res["Errored"])
                or (failed and res["Failed"])
            )
        raise Unsupported(field, f"unsupported element {kind!r} in depends")

    return ev(_parse(depends, "depends", field))


def expand_dependencies(dependencies: list[str]) -> str:
    """Legacy ``dependencies: [A, B]`` as the equivalent ``depends`` (``A && B``)."""
    return " && ".join(dependencies)


# -- when and retry --------------------------------------------------------------------


def _compare(op: str, a: Any, b: Any, field: str) -> bool:
    if op == "in":
        if not isinstance(b, list):
            raise ResolveError(f"{field}: 'in' needs a list on its right, got {b!r}")
        return any(_compare("==", a, x, field) for x in b)
    if op in ("==", "!="):
        same_kind = isinstance(a, bool) == isinstance(b, bool) and (
            isinstance(a, (int, float)) == isinstance(b, (int, float))
        )
        equal = same_kind and a == b
        return equal if op == "==" else not equal
    if op in ("=~", "!~"):
        if not (isinstance(a, str) and isinstance(b, str)):
            raise ResolveError(f"{field}: {op} compares strings, got {a!r} and {b!r}")
        found = re.search(b, a) is not None
        return found if op == "=~" else not found
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    if not numeric and not (isinstance(a, str) and isinstance(b, str)):
        raise ResolveError(f"{field}: cannot compare {a!r} {op} {b!r} (types differ)")
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


def _evaluate(node: tuple[Any, ...], lookup: Callable[[str], Any], field: str) -> Any:
    kind = node[0]
    if kind in ("or", "and"):
        left = _evaluate(node[1], lookup, field)
        if not isinstance(left, bool):
            raise ResolveError(f"{field}: {'||' if kind == 'or' else '&&'} needs booleans, got {left!r}")
        if (kind == "or" and left) or (kind == "and" and not left):
            return left
        right = _evaluate(node[2], lookup, field)
        if not isinstance(right, bool):
            raise ResolveError(f"{field}: boolean operator needs booleans, got {right!r}")
        return right
    if kind == "not":
        value = _evaluate(node[1], lookup, field)
        if not isinstance(value, bool):
            raise ResolveError(f"{field}: ! needs a boolean, got {value!r}")
        return not value
    if kind == "cmp":
        return _compare(node[1], _evaluate(node[2], lookup, field), _evaluate(node[3], lookup, field), field)
    if kind == "lit":
        return node[1]
    if kind == "var":
        return lookup(node[1])
    if kind == "list":
        return [_evaluate(n, lookup, field) for n in node[1]]
    if kind == "call":
        arg = _evaluate(node[2], lookup, field)
        try:
            return int(str(arg)) if node[1] == "asInt" else float(str(arg))
        except ValueError:
            raise ResolveError(f"{field}: {node[1]}({arg!r}) is not a number") from None
    raise Unsupported(field, f"unsupported element {kind!r}")


def _boolean(value: Any, text: str, field: str) -> bool:
    if not isinstance(value, bool):
        raise ResolveError(f"{field}: {text!r} evaluated to {value!r}, not a boolean")
    return value


def eval_when(text: str, field: str) -> bool:
    """Evaluate an already substituted ``when``; bare words are strings as in Argo (govaluate)."""

    def lookup(name: str) -> Any:
        return {"true": True, "false": False}.get(name, name)

    return _boolean(_evaluate(_parse(text, "when", field), lookup, field), text, field)


def eval_retry(text: str, last_retry: Mapping[str, str], field: str) -> bool:
    """Evaluate a retry ``expression`` with ``lastRetry.*`` variables (all strings, as in Argo)."""

    def lookup(name: str) -> Any:
        if name in ("true", "false"):
            return name == "true"
        head, _, attr = name.partition(".")
        if head == "lastRetry" and attr in last_retry:
            return last_retry[attr]
        raise Unsupported(
            field,
            f"unknown variable {name!r} (known: lastRetry.exitCode, lastRetry.status, "
            "lastRetry.duration, lastRetry.message)",
        )

    return _boolean(_evaluate(_parse(text, "retry", field), lookup, field), text, field)


# -- checks before running ---------------------------------------------------------------

_RETRY_VARS = ("lastRetry.exitCode", "lastRetry.status", "lastRetry.duration", "lastRetry.message", "true", "false")


def _names(node: Any) -> list[str]:
    if isinstance(node, tuple) and node and node[0] == "var":
        return [node[1]]
    children = node[1:] if isinstance(node, tuple) else node if isinstance(node, list) else []
    return [name for child in children for name in _names(child)]


def check_retry(text: str, field: str) -> None:
    """Raise :class:`Unsupported` now for a retry expression :func:`eval_retry` would refuse after a failure."""
    for name in _names(_parse(text, "retry", field)):
        if name not in _RETRY_VARS:
            raise Unsupported(field, f"unknown variable {name!r} (known: {', '.join(_RETRY_VARS[:4])})")


def check_when(text: str, field: str) -> None:
    """Raise :class:`Unsupported` now for ``when`` syntax this subset lacks; tags stand in as bare words."""
    _parse(re.sub(r"\{\{.*?\}\}", "x", text), "when", field)
