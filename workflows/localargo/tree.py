"""The ``argo get``-like view: a header, then the node tree with phase, template, pod, duration, message.

Live: on a terminal the tree is redrawn in place as nodes change; elsewhere (CI, pipes,
``--verbose``) each phase change is printed as one line, and the full tree at the end.
Output parameters are shown under their node (``argo get`` keeps them in ``-o yaml``).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterable
from typing import TextIO

from .status import Node, Phase

__all__ = ["SYMBOLS", "TreeDisplay", "render", "human_duration"]

SYMBOLS = {
    Phase.SUCCEEDED: "✔",
    Phase.FAILED: "✖",
    Phase.ERROR: "⚠",
    Phase.RUNNING: "●",
    Phase.PENDING: "◷",
    Phase.SKIPPED: "○",
    Phase.OMITTED: "○",
}
RETRYING = "↻"
_COLORS = {Phase.SUCCEEDED: "32", Phase.FAILED: "31", Phase.ERROR: "31", Phase.RUNNING: "36"}


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def _symbol(node: Node, color: bool) -> str:
    sym = SYMBOLS.get(node.phase, "?")
    if node.type == "Retry" and node.phase == Phase.RUNNING and len(node.children) > 1:
        sym = RETRYING
    code = _COLORS.get(node.phase)
    return f"\x1b[{code}m{sym}\x1b[0m" if color and code else sym


def _params(node: Node, width: int = 28) -> str:
    items = []
    for k, v in node.parameters.items():
        v = v.replace("\n", " ")
        items.append(f"{k}={v if len(v) <= width else v[: width - 1] + '…'}")
    return "  ".join(items)


def _rows(node: Node, prefix: str, last: bool, root: bool, color: bool) -> Iterable[tuple[str, ...]]:
    """``(plain label, shown label, template, pod, duration, message)`` per node; ``(line,)`` for parameters."""
    branch = "" if root else ("└─" if last else "├─")
    plain = f" {prefix}{branch}{_symbol(node, False)} {node.display_name}"
    shown = f" {prefix}{branch}{_symbol(node, color)} {node.display_name}"
    pod = node.pod_name if node.type == "Pod" else ""
    msg = node.message if node.phase != Phase.SUCCEEDED else ""
    yield (plain, shown, node.template, pod or "", human_duration(node.duration()), msg)
    child_prefix = prefix if root else prefix + ("  " if last else "│ ")
    children = list(node.children)
    params = _params(node)
    attempt = node.type == "Pod" and node.display_name.endswith(")")  # shown once, on its Retry node
    if params and node.type != "DAG" and not attempt:
        yield (f" {child_prefix}{'│ ' if children else '  '}  {params}",)
    for i, child in enumerate(children):
        yield from _rows(child, child_prefix, i == len(children) - 1 and not node.not_started, False, color)
    for i, name in enumerate(node.not_started):
        yield (
            f" {child_prefix}{'└─' if i == len(node.not_started) - 1 else '├─'}· {name}  (not started: "
            f"{'failFast' if node.phase in Phase.FAILED_OR_ERROR else 'stopped'})",
        )


def render(root: Node, header: dict[str, str], color: bool = False) -> str:
    """The whole view as text (no trailing newline)."""
    lines = [f"{k + ':':<15}{v}" for k, v in header.items()]
    lines += [f"{'Status:':<15}{root.phase}", f"{'Duration:':<15}{human_duration(root.duration())}"]
    if root.message:
        lines.append(f"{'Message:':<15}{root.message}")
    rows = list(_rows(root, "", True, True, color))
    full = [r for r in rows if len(r) == 6]
    w = [
        max([len(r[i]) for r in full] + [len(h)])
        for i, h in ((0, "STEP"), (2, "TEMPLATE"), (3, "PODNAME"), (4, "DURATION"))
    ]
    lines += ["", f"{'STEP':<{w[0]}}  {'TEMPLATE':<{w[1]}}  {'PODNAME':<{w[2]}}  {'DURATION':<{w[3]}}  MESSAGE"]
    for r in rows:
        if len(r) == 1:
            lines.append(r[0])
            continue
        pad = " " * (w[0] - len(r[0]))
        lines.append(f"{r[1]}{pad}  {r[2]:<{w[1]}}  {r[3]:<{w[2]}}  {r[4]:<{w[3]}}  {r[5]}".rstrip())
    return "\n".join(lines)


class TreeDisplay:
    """Shows a run as it goes: redrawn in place on a TTY, one line per change otherwise."""

    def __init__(self, root: Node, header: dict[str, str], out: TextIO, live: bool) -> None:
        self.root, self.header, self.out, self.live = root, header, out, live
        self.color = live
        self.lock = threading.Lock()
        self.seen: dict[str, str] = {}
        self.drawn = 0
        self.last_draw = 0.0
        self.stop = threading.Event()
        self.ticker: threading.Thread | None = None

    def start(self) -> None:
        if self.live:
            self.ticker = threading.Thread(target=self._tick, name="tree-ticker", daemon=True)
            self.ticker.start()

    def _tick(self) -> None:
        while not self.stop.wait(1.0):
            self.update(None)

    def update(self, node: Node | None) -> None:
        with self.lock:
            if self.live:
                if node is None or time.monotonic() - self.last_draw > 0.2 or node.fulfilled:
                    self._redraw()
                return
            if node is None or self.seen.get(node.name) == node.phase:
                return
            self.seen[node.name] = node.phase
            if node.phase == Phase.PENDING:
                return
            extra = ""
            if node.fulfilled:
                extra = f" in {human_duration(node.duration())}" if node.phase in Phase.COMPLETED else ""
                extra += f": {node.message}" if node.message else ""
                params = _params(node) if node.type != "DAG" else ""
                extra += f"  {params}" if params and node.phase == Phase.SUCCEEDED else ""
            stamp = time.strftime("%H:%M:%S")
            self.out.write(
                f"{stamp} {_symbol(node, False)} {node.display_name} ({node.template}) {node.phase.lower()}{extra}\n"
            )
            self.out.flush()

    def _redraw(self) -> None:
        text = render(self.root, self.header, self.color)
        cols = shutil.get_terminal_size((120, 40)).columns
        lines = [line[: cols + 20] for line in text.split("\n")]
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F\x1b[J")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self.drawn = len(lines)
        self.last_draw = time.monotonic()

    def finish(self) -> None:
        """Stop live updates and leave the final tree on screen."""
        self.stop.set()
        with self.lock:
            if self.live:
                self._redraw()
            else:
                self.out.write("\n" + render(self.root, self.header) + "\n")
                self.out.flush()
