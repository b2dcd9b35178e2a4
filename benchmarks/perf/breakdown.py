"""Where a stage's wall time goes: start-up, imports, reading, compute, MLflow, report, outputs, audit.

Re-runs the stages of one finished ``benchmarks.perf.pipeline --keep`` run, each in a fresh
process with the same arguments (taken from the compiled workflow, its parameter defaults
and the run's ``source``), the same services (the demo's PostgreSQL audit and sqlite MLflow
store under the state directory) and the run's own input artifacts:

1. a plain run under ``-X importtime``: the stage's wall time, and its import time summed
   by top-level package (module-level and lazy imports alike);
2. a profiled run: the modules the first run imported are imported first (timed: the
   ``imports`` row), then ``cProfile`` runs the stage, and its cumulative times of named
   functions become the phases of the table; ``start-up and exit`` is the process's wall
   time minus both.

cProfile adds overhead to Python-heavy code (MLflow, SQLAlchemy, the audit) more than to
NumPy/scikit-learn compute, so read the phases as shares; the plain run's wall is the
unprofiled reference. Usage::

    python -m benchmarks.perf.pipeline --rows 1000000 --state S --json S/e2e.json --keep
    python -m benchmarks.perf.breakdown --state S --run S/e2e.json [--stages train,eval]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PHASES", "Phase", "import_times", "phase_rows", "render_table"]

MANIFEST = Path("workflows/compiled/workflow.yaml")
STAGES = ("ingest", "silver", "train", "eval")


@dataclass(frozen=True)
class Phase:
    """One row: the summed cumulative time of functions ``(file suffix, function name)``.

    ``within_body``: the phase runs inside the stage's ``body`` (everything but the audit and
    the final publish does); what ``body`` spends outside every such phase is its own row.
    """

    label: str
    functions: tuple[tuple[str, str], ...]
    within_body: bool = True
    minus: tuple[tuple[str, str], ...] = field(default=())


_AUDIT = Phase(
    "audit (PostgreSQL)",
    (
        ("stages/common/audit.py", "open_audit"),
        ("stages/common/audit.py", "start"),
        ("stages/common/audit.py", "finish"),
        ("stages/common/audit.py", "close"),
    ),
    within_body=False,
)
_PUBLISH = Phase("publish outputs", (("stages/common/runner.py", "publish_outputs"),), within_body=False)
_FETCH = Phase("fetch inputs", (("stages/common/runner.py", "fetch_input"),))
_PLOTS = tuple(("stages/eval/plots.py", f) for f in ("pr_curve", "roc_curve", "score_histograms", "attack_recall_bars"))
_OUTPUT = Phase("output staging", (("stages/common/runner.py", "output"),))

PHASES: dict[str, tuple[Phase, ...]] = {
    "ingest": (_AUDIT, _FETCH, _OUTPUT, _PUBLISH),
    "silver": (_AUDIT, _FETCH, _OUTPUT, _PUBLISH),
    "train": (
        _AUDIT,
        _FETCH,
        Phase(
            "read features + manifest",
            (("stages/common/silver_parts.py", "open_silver"), ("stages/train/data.py", "read_train_sample")),
        ),
        Phase("fit: the fold models and the final one", (("stages/train/models.py", "_fit"),)),
        Phase("score: out-of-fold rows", (("stages/train/models.py", "_score"),)),
        Phase(
            "calibrate, metrics, scoring reference",
            tuple(("stages/train/models.py", f) for f in ("calibrate", "validation_metrics", "_reference")),
        ),
        Phase("save model (skops)", (("stages/common/model_io.py", "save_model"),)),
        Phase(
            "MLflow (run, log model, register)",
            (("stages/train/tracking.py", "check_reachable"), ("stages/train/tracking.py", "track")),
        ),
        _PUBLISH,
    ),
    "eval": (
        _AUDIT,
        _FETCH,
        Phase(
            "open parts + manifests",
            (("stages/common/silver_parts.py", "fetch_silver"),),
            minus=(("stages/common/runner.py", "fetch_input"),),
        ),
        Phase("load model (skops)", (("stages/common/model_io.py", "load_model"),)),
        Phase("score holdout", (("stages/eval/evaluate.py", "score"),)),
        Phase(
            "read parts, drift counts, top alerts",
            (("stages/eval/holdout.py", "read_holdout"),),
            minus=(("stages/eval/evaluate.py", "score"),),
        ),
        Phase(
            "metrics + gate",
            (("stages/eval/evaluate.py", "metrics_document"), ("stages/eval/gate.py", "gate_checks")),
        ),
        Phase(
            "MLflow registry (candidate, champion, record)",
            (
                ("stages/eval/evaluate.py", "_registry"),
                ("stages/eval/registry.py", "candidate"),
                ("stages/eval/evaluate.py", "_decide"),
                ("stages/eval/registry.py", "record"),
            ),
        ),
        Phase("plots (SVG)", _PLOTS),
        Phase("report HTML (without plots)", (("stages/eval/evaluate.py", "_report"),), minus=_PLOTS),
        Phase("write metrics + report", (("stages/eval/evaluate.py", "_publish"),)),
        _PUBLISH,
    ),
}


def _cumulative(stats: Mapping[tuple[str, int, str], tuple[Any, ...]], functions: Iterable[tuple[str, str]]) -> float:
    """Sum of the cumulative seconds of every profiled function matching ``(file suffix, name)``."""
    wanted = tuple(functions)
    total = 0.0
    for (filename, _line, name), entry in stats.items():
        if any(name == fn and filename.replace(os.sep, "/").endswith(suffix) for suffix, fn in wanted):
            total += float(entry[3])  # (primitive calls, calls, tottime, cumtime, callers)
    return total


def phase_rows(
    stats: Mapping[tuple[str, int, str], tuple[Any, ...]],
    phases: Sequence[Phase],
    stage: str,
    process_wall: float,
    import_seconds: float,
    profiled_seconds: float,
    dump_seconds: float = 0.0,
) -> list[tuple[str, float]]:
    """The breakdown of one stage's process wall time, rows summing to ``process_wall``.

    ``stats`` is ``pstats.Stats(...).stats`` of the profiled part (``profiled_seconds`` of
    wall); ``import_seconds`` were spent importing before it and ``dump_seconds`` writing the
    profile after it. Rows: start-up and exit, imports, each phase, the rest of the stage's
    ``body`` (its own compute), runner and other, and the profile dump when given.
    """
    body = _cumulative(stats, [(f"stages/{stage}/__main__.py", "body")])
    rows: list[tuple[str, float]] = [
        ("interpreter start-up and exit", max(process_wall - import_seconds - profiled_seconds - dump_seconds, 0.0)),
        ("imports (all, incl. lazy)", import_seconds),
    ]
    inside = 0.0
    for phase in phases:
        seconds = _cumulative(stats, phase.functions) - _cumulative(stats, phase.minus)
        rows.append((phase.label, seconds))
        inside += seconds if phase.within_body else 0.0
    if body:
        rows.append((f"{stage} body, rest (own compute)", max(body - inside, 0.0)))
    accounted = sum(s for _, s in rows[2:])
    rows.append(("runner, logging, other", max(profiled_seconds - accounted, 0.0)))
    if dump_seconds:
        rows.append(("writing the profile (measurement only)", dump_seconds))
    return rows


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def import_times(stderr: str) -> tuple[dict[str, float], list[str]]:
    """From ``-X importtime`` output: seconds per top-level package (self times summed), and the
    modules imported at the outermost level, in order (what a later process can import up front)."""
    by_package: dict[str, float] = {}
    top: list[str] = []
    for line in stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if not m:
            continue
        self_us, _cum_us, indent, module = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
        package = module.split(".")[0]
        if package == "stages" and module.count(".") >= 1:
            package = ".".join(module.split(".")[:2])
        by_package[package] = by_package.get(package, 0.0) + self_us / 1e6
        if len(indent) <= 1:
            top.append(module)
    return by_package, top


def render_table(title: str, rows: Sequence[tuple[str, float]], total: float | None = None) -> str:
    """A markdown table of ``(label, seconds)`` rows with each row's share of ``total`` (default: their sum)."""
    total = sum(s for _, s in rows) if total is None else total
    lines = [f"| {title} | s | share |", "|---|---:|---:|"]
    for label, seconds in rows:
        share = f"{100 * seconds / total:.0f}%" if total > 0 else "n/a"
        lines.append(f"| {label} | {seconds:.2f} | {share} |")
    lines.append(f"| **total** | **{total:.2f}** | 100% |")
    return "\n".join(lines)


# --- running the stages ---------------------------------------------------------------------------


def _stage_argv(stage: str, state: Path, workflow: str, source: str, out: Path) -> list[str]:
    """The stage's container args from the compiled workflow, with parameters and paths filled in."""
    import yaml

    doc = yaml.safe_load(MANIFEST.read_text())
    params = {p["name"]: str(p.get("value", "")) for p in doc["spec"]["arguments"]["parameters"]}
    params["source"] = source
    dag = next(t for t in doc["spec"]["templates"] if t["name"] == "pipeline")
    task = next(t for t in dag["dag"]["tasks"] if t["name"] == stage)
    task_params = {
        p["name"]: re.sub(r"\{\{workflow\.parameters\.([\w-]+)\}\}", lambda m: params[m.group(1)], str(p["value"]))
        for p in task.get("arguments", {}).get("parameters", [])
    }
    template = next(t for t in doc["spec"]["templates"] if t["name"] == stage)
    argv = []
    for arg in template["container"]["args"]:
        arg = re.sub(r"\{\{inputs\.parameters\.([\w-]+)\}\}", lambda m: task_params[m.group(1)], arg)
        arg = arg.replace("{{workflow.creationTimestamp}}", "2026-11-26T00:00:00Z")
        arg = re.sub(r"/tmp/outputs", str(out), arg)
        for found in re.findall(r"/tmp/inputs/([\w.-]+)", arg):
            matches = sorted((state / "artifacts").glob(f"*/{workflow}/{found}"))
            if not matches:
                raise SystemExit(f"{found}: no such artifact of {workflow} under {state / 'artifacts'}")
            arg = arg.replace(f"/tmp/inputs/{found}", str(matches[0]))
        argv.append(arg)
    return argv


def _env(state: Path, run_id: str) -> dict[str, str]:
    from workflows.local.demo import local_env

    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(local_env(state))
    env.update({"RUN_ID": run_id, "STAGE_ATTEMPT": "0", "PYTHONPATH": str(Path.cwd()), "PYTHONUNBUFFERED": "1"})
    return env


def _run(argv: list[str], env: dict[str, str], log: Path) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode not in (0, 3):  # 3: eval's gate failed, everything was still written
        raise SystemExit(f"{' '.join(argv[:4])} ... exited {proc.returncode}; see {log}")
    return wall, proc.stderr


def _profile_main(argv: list[str]) -> int:
    """Child side of the profiled run: ``_profile STAGE MODULES_FILE PROF_OUT TIMES_OUT -- ARGS``."""
    import cProfile
    import importlib
    import runpy

    stage, modules_file, prof_out, times_out = argv[:4]
    args = argv[argv.index("--") + 1 :]
    started = time.perf_counter()
    for module in Path(modules_file).read_text().split():
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001, S112 - a module only its own importer can load; it loads in the run
            continue
    imported = time.perf_counter() - started
    sys.argv = [f"stages.{stage}", *args]
    from stages.common import runner

    # A stage ends its process without the interpreter's teardown (os._exit); this one must
    # come back here to write the profile.
    setattr(runner, "main_exit", sys.exit)  # noqa: B010 - replacing a function of another module on purpose
    profiler = cProfile.Profile()
    code = 0
    started = time.perf_counter()
    profiler.enable()
    try:
        runpy.run_module(f"stages.{stage}", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        profiler.disable()
    profiled = time.perf_counter() - started
    started = time.perf_counter()
    profiler.dump_stats(prof_out)
    dumped = time.perf_counter() - started
    Path(times_out).write_text(json.dumps({"imports": imported, "profiled": profiled, "dump": dumped, "exit": code}))
    return 0


def breakdown_stage(stage: str, state: Path, workflow: str, source: str, scratch: Path) -> dict[str, Any]:
    """Run ``stage`` plain (with ``-X importtime``) and profiled; its tables' numbers."""
    scratch.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"stage": stage}
    for attempt, kind in enumerate(("plain", "profiled")):
        out = scratch / kind
        out.mkdir(exist_ok=True)
        args = _stage_argv(stage, state, workflow, source, out)
        env = _env(state, f"{workflow}-breakdown-{stage}-{attempt}-{int(time.time())}")
        if kind == "plain":
            wall, stderr = _run([sys.executable, "-X", "importtime", "-m", f"stages.{stage}", *args], env, out / "log")
            by_package, top = import_times(stderr)
            (scratch / "modules.txt").write_text("\n".join(top) + "\n")
            results.update(plain_wall=wall, imports_by_package=by_package)
        else:
            prof, times = scratch / "stage.prof", scratch / "times.json"
            child = [
                sys.executable,
                "-m",
                "benchmarks.perf.breakdown",
                "_profile",
                stage,
                str(scratch / "modules.txt"),
                str(prof),
                str(times),
                "--",
                *args,
            ]
            wall, _ = _run(child, env, out / "log")
            t = json.loads(times.read_text())
            if t["exit"] not in (0, 3):
                raise SystemExit(f"profiled {stage} exited {t['exit']}; see {out / 'log'}")
            results.update(
                profiled_wall=wall, profile=str(prof), imports=t["imports"], profiled=t["profiled"], dump=t["dump"]
            )
            results["rows"] = _rows(results)
    return results


def _rows(result: dict[str, Any]) -> list[tuple[str, float]]:
    """The phase rows of one stage from its saved profile (so a changed PHASES can re-render)."""
    stats = pstats.Stats(result["profile"]).stats  # type: ignore[attr-defined]
    stage = result["stage"]
    walls = (result["profiled_wall"], result["imports"], result["profiled"], result.get("dump", 0.0))
    return phase_rows(stats, PHASES[stage], stage, *walls)


def _help_imports(stage: str) -> float:
    """Import time of ``python -X importtime -m stages.<stage> --help`` (module-level imports only)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", f"stages.{stage}", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )
    return sum(import_times(proc.stderr)[0].values())


def render(results: list[dict[str, Any]], top: int = 6) -> str:
    parts = []
    overview = [(r["stage"], r["plain_wall"]) for r in results]
    parts.append(render_table("stage (plain run, -X importtime)", overview))
    for r in results:
        parts.append(f"\n#### {r['stage']}\n")
        parts.append(
            f"Plain run {r['plain_wall']:.2f} s, profiled run {r['profiled_wall']:.2f} s; "
            f"`--help` imports {r['help_imports']:.2f} s.\n"
        )
        parts.append(render_table(f"{r['stage']}: phase (profiled run)", r["rows"]))
        packages = sorted(r["imports_by_package"].items(), key=lambda kv: -kv[1])
        shown = packages[:top] + [("other packages", sum(s for _, s in packages[top:]))]
        parts.append("\n" + render_table(f"{r['stage']}: imports by package (plain run)", shown))
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_profile"]:
        return _profile_main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m benchmarks.perf.breakdown", description=__doc__.splitlines()[0])
    p.add_argument("--state", type=Path, help="state directory of a `pipeline --keep` run")
    p.add_argument("--run", type=Path, help="that run's --json result (workflow name, source)")
    p.add_argument("--stages", default="train,eval", help="comma-separated stages (default train,eval)")
    p.add_argument("--json", type=Path, help="also write the raw numbers here")
    p.add_argument("--render", type=Path, help="only re-render the tables from an earlier --json (its profiles)")
    args = p.parse_args(argv)
    if args.render:
        earlier = json.loads(args.render.read_text())
        print(render([{**r, "rows": _rows(r)} for r in earlier]))
        return 0
    if args.state is None or args.run is None:
        p.error("--state and --run are required (or --render)")
    run = json.loads(args.run.read_text())
    state = args.state.resolve()
    stages = [s for s in args.stages.split(",") if s]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        p.error(f"unknown stage {unknown[0]!r} (one of {', '.join(STAGES)})")
    results = []
    for stage in stages:
        print(f"{stage} ...", file=sys.stderr, flush=True)
        r = breakdown_stage(stage, state, run["workflow"], run["source"], state / "breakdown" / stage)
        r["help_imports"] = _help_imports(stage)
        results.append(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
