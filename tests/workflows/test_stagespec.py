"""The DAG's flags and defaults against each stage's own argument parser.

``workflows/stagespec.py`` repeats what the stage CLIs accept: the flags the templates pass,
the workflow parameters' defaults and their enums. Nothing else ties the two copies
together, so these tests build every stage's real parser (``stages.<stage>.__main__.
build_parser`` plus the runner's common flags) and parse exactly the arguments the DAG
would give it with every parameter at its default.
"""

from __future__ import annotations

import argparse
import importlib
import re
from typing import Any

import pytest

from stages.common.runner import add_common_flags
from workflows.pipeline import _args
from workflows.stagespec import (
    PARTITIONED_PARAMETERS,
    PARTITIONED_SPECS,
    SCORING_PARAMETERS,
    SCORING_SPECS,
    STAGE_SPECS,
    WORKFLOW_PARAMETERS,
    StageSpec,
    WorkflowParam,
)

CASES = (
    [("training", spec, WORKFLOW_PARAMETERS) for spec in STAGE_SPECS]
    + [("scoring", spec, SCORING_PARAMETERS) for spec in SCORING_SPECS]
    + [("partitioned", spec, PARTITIONED_PARAMETERS) for spec in PARTITIONED_SPECS]
)
IDS = [f"{dag}-{spec.name}" for dag, spec, _ in CASES]

INTENDED = {
    ("scoring", "--window"): "silver alone uses every flow; the daily scoring run scores the previous day",
}
"""(dag, flag) whose workflow default differs from the stage's on purpose, with the reason."""

TEMPLATE_VALUES = {
    "workflow.creationTimestamp": "2026-11-29T00:15:00Z",
    "workflow.parameters.image-registry": "registry.example",
    "workflow.parameters.image-tag": "0.1.0",
}
"""Argo variables in fixed arguments, with a value of the shape Argo substitutes."""

ITEM = {
    "k": "00001",
    "source": "s3://cybersec-mlops/landing/conn.01.log",
    "raw": "raw/parts/0123456789abcdef/flows.parquet",
    "prev": "raw/parts/fedcba9876543210/flows.parquet",
    "digest": "0123456789abcdef",
    "split": "train",
}
"""One object of the partitioned pipeline's list, as ``stages.ingest.partitions`` writes it."""


def parser_of(spec: StageSpec) -> argparse.ArgumentParser:
    module = importlib.import_module(spec.module or f"stages.{spec.stage}.__main__")
    parser: argparse.ArgumentParser = module.build_parser()
    add_common_flags(parser)  # what run_stage adds before parsing
    return parser


def actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def substitute(arg: str, params: dict[str, str]) -> str:
    """``arg`` as Argo hands it to the container: parameters and variables replaced."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("inputs.parameters."):
            return params[name.removeprefix("inputs.parameters.")]
        if name.startswith("workflow.parameters.") and name not in TEMPLATE_VALUES:
            return params[name.removeprefix("workflow.parameters.")]
        return TEMPLATE_VALUES[name]

    return re.sub(r"\{\{([^}]+)\}\}", value, arg)


def table(params: tuple[WorkflowParam, ...]) -> dict[str, WorkflowParam]:
    return {p.name: p for p in params}


def values(spec: StageSpec, params: tuple[WorkflowParam, ...]) -> dict[str, str]:
    """Every input parameter at its workflow default, or from the list's item for a fan-out."""
    out = {p.name: p.default for p in params}
    for param, field in spec.loop.params if spec.loop else ():
        out[param] = ITEM[field]
    return out


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    try:
        return parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{parser.prog} rejects the DAG's arguments {argv} (argparse's message above)")


@pytest.mark.parametrize(("dag", "spec", "params"), CASES, ids=IDS)
def test_every_flag_the_dag_passes_exists(dag: str, spec: StageSpec, params: tuple[WorkflowParam, ...]) -> None:
    known = actions(parser_of(spec))
    for arg in _args(spec):
        flag = arg.partition("=")[0]
        assert flag in known, f"{dag} DAG passes {flag} to stages.{spec.stage}, which has no such flag"


@pytest.mark.parametrize(("dag", "spec", "params"), CASES, ids=IDS)
def test_the_stage_accepts_the_dag_arguments_at_their_defaults(
    dag: str, spec: StageSpec, params: tuple[WorkflowParam, ...]
) -> None:
    parse(parser_of(spec), [substitute(arg, values(spec, params)) for arg in _args(spec)])


@pytest.mark.parametrize(("dag", "spec", "params"), CASES, ids=IDS)
def test_workflow_defaults_equal_the_stage_defaults(
    dag: str, spec: StageSpec, params: tuple[WorkflowParam, ...]
) -> None:
    """A workflow parameter's default, parsed by the stage, is the stage's own default."""
    parser = parser_of(spec)
    known = actions(parser)
    defaults = values(spec, params)
    parsed = parse(parser, [substitute(arg, defaults) for arg in _args(spec)])
    from_item = dict(spec.loop.params) if spec.loop else {}
    for flag, param in spec.options:
        action = known[flag]
        if action.required or (dag, flag) in INTENDED or param in from_item:
            continue  # a required flag has no default to drift from
        value: Any = getattr(parsed, action.dest)
        assert value == action.default, (
            f"{dag} workflow parameter {param} defaults to {defaults[param]!r} (parsed {value!r}), "
            f"stages.{spec.stage} {flag} to {action.default!r}"
        )


@pytest.mark.parametrize(("dag", "spec", "params"), CASES, ids=IDS)
def test_enums_are_the_stage_choices(dag: str, spec: StageSpec, params: tuple[WorkflowParam, ...]) -> None:
    known, by_name = actions(parser_of(spec)), table(params)
    from_item = dict(spec.loop.params) if spec.loop else {}
    for flag, param in spec.options:
        if param in from_item:
            continue  # the list step writes it
        choices = known[flag].choices
        enum = by_name[param].enum
        if choices is None:
            assert not enum, f"{dag} {param} has an enum but stages.{spec.stage} {flag} takes any value"
            continue
        assert list(enum) == list(choices), f"{dag} {param} enum {enum} != stages.{spec.stage} {flag} {choices}"


def test_intended_differences_still_differ() -> None:
    """An entry of INTENDED that no longer differs is stale: remove it."""
    for dag, spec, params in CASES:
        for flag, param in spec.options:
            if (dag, flag) in INTENDED:
                action = actions(parser_of(spec))[flag]
                assert table(params)[param].default != action.default, f"INTENDED[{dag}, {flag}] is stale"


def test_a_drifted_default_is_caught() -> None:
    """The comparison itself: a copy that disagrees with the stage fails it."""
    spec = STAGE_SPECS[2]  # train
    parser = parser_of(spec)
    argv = [
        substitute(a, {**{p.name: p.default for p in WORKFLOW_PARAMETERS}, "n-estimators": "75"}) for a in _args(spec)
    ]
    parsed = parse(parser, argv)
    assert parsed.n_estimators == 75 != actions(parser)["--n-estimators"].default
    with pytest.raises(SystemExit):
        parser.parse_args([*argv, "--model=forest"])  # not one of the choices
