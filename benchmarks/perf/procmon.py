"""Per-process CPU and peak memory of this process's children, sampled from ``/proc`` (Linux).

The local executor starts each stage as a child process of the process that calls
``run_workflow``, from a worker thread, and reaps it itself — so there is no hook to
call ``wait4`` on. ``ChildMonitor`` polls instead (every 0.1 s):

- which children exist (``/proc/self/task/*/children``) and what they run (cmdline);
- their high-water RSS (``VmHWM``; a high-water mark, so only growth in the last
  interval before exit can be missed) and the summed RSS of their own descendants;
- when a child is reaped, the growth of ``getrusage(RUSAGE_CHILDREN)``: its exact CPU
  time (user + sys), and its exact peak RSS whenever that peak is the largest so far.

The stages of this pipeline run one after another, so each reap's rusage growth
belongs to one stage; if two children vanish within one interval the CPU is split in
proportion to their sampled CPU (and ``overlapped`` is set).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ChildStats", "ChildMonitor"]

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class ChildStats:
    """What was seen of one child process."""

    pid: int
    name: str
    first_seen: float
    last_seen: float
    peak_rss_bytes: int = 0
    cpu_sampled: float = 0.0
    cpu_seconds: float | None = None
    """Exact CPU (user + sys) from RUSAGE_CHILDREN when the child was reaped; None if never reaped."""
    peak_exact: bool = False
    overlapped: bool = False


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _children(pid: int | str) -> set[int]:
    out: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        text = _read(f"/proc/{pid}/task/{tid}/children")
        if text:
            out.update(int(p) for p in text.split())
    return out


def _name(pid: int) -> str:
    raw = _read(f"/proc/{pid}/cmdline") or ""
    argv = [a for a in raw.split("\0") if a]
    if "-m" in argv[:-1]:
        module = argv[argv.index("-m") + 1]
        return module.removeprefix("stages.")
    return Path(argv[0]).name if argv else f"pid {pid}"


def _sample(pid: int) -> tuple[int, int, float] | None:
    """(VmHWM bytes, VmRSS bytes, CPU seconds so far) of a live process; None when gone or a zombie."""
    status, stat = _read(f"/proc/{pid}/status"), _read(f"/proc/{pid}/stat")
    if not status or not stat or "VmHWM" not in status:
        return None
    fields = {k: v for k, _, v in (line.partition(":") for line in status.splitlines())}
    hwm = int(fields["VmHWM"].split()[0]) * 1024
    rss = int(fields["VmRSS"].split()[0]) * 1024
    after_comm = stat.rsplit(")", 1)[1].split()
    cpu = (int(after_comm[11]) + int(after_comm[12])) / _TICK  # utime, stime
    return hwm, rss, cpu


def _tree_rss(pid: int) -> int:
    total = 0
    for child in _children(pid):
        s = _sample(child)
        total += (s[1] if s else 0) + _tree_rss(child)
    return total


class ChildMonitor:
    """``with ChildMonitor() as mon: ...`` then ``mon.children`` (in start order)."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.children: list[ChildStats] = []
        self._live: dict[int, ChildStats] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="child-monitor", daemon=True)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._cpu, self._maxrss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024

    def __enter__(self) -> ChildMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def _poll(self) -> None:
        now = time.monotonic()
        current = _children(os.getpid())
        for pid in current - set(self._live):
            stats = ChildStats(pid, _name(pid), now, now)
            self._live[pid] = stats
            self.children.append(stats)
        for pid in current:
            s = _sample(pid)
            if s is None:
                continue
            stats = self._live[pid]
            if stats.cpu_sampled == 0.0:  # seen between fork and exec, the child still shows our cmdline
                stats.name = _name(pid)
            stats.last_seen = now
            stats.peak_rss_bytes = max(stats.peak_rss_bytes, s[0], s[1] + _tree_rss(pid))
            stats.cpu_sampled = s[2]
        gone = [self._live.pop(pid) for pid in set(self._live) - current]
        if gone:
            self._reaped(gone)

    def _reaped(self, gone: list[ChildStats]) -> None:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu, maxrss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024
        delta, self._cpu = cpu - self._cpu, cpu
        sampled = sum(g.cpu_sampled for g in gone) or float(len(gone))
        for g in gone:
            share = (g.cpu_sampled or 1.0) / sampled if len(gone) > 1 else 1.0
            g.cpu_seconds = max(delta * share, g.cpu_sampled)
            g.overlapped = len(gone) > 1
        if maxrss > self._maxrss and len(gone) == 1:
            gone[0].peak_rss_bytes = max(gone[0].peak_rss_bytes, maxrss)
            gone[0].peak_exact = True
        self._maxrss = max(self._maxrss, maxrss)
