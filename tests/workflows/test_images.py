"""workflows.images: image names and tags come from docker-bake.hcl, and only from there."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflows.images import BAKE_FILE, STAGES, BakeError, load_bake

BAKE = """
variable "REGISTRY" {
  default = "registry.example.com/sec"
}
variable "TAG" {
  default = "%(tag)s"
}
target "ingest" {
  tags = ["${REGISTRY}/cybersec-mlops-ingest:${TAG}"]
}
target "odd" {
  tags = ["${MISSING}/x:${TAG}"]
}
target "untagged" {
  dockerfile = "x"
}
"""


def write_bake(tmp_path: Path, tag: str = "1.2.3", text: str = BAKE) -> Path:
    path = tmp_path / "docker-bake.hcl"
    path.write_text(text % {"tag": tag})
    return path


def test_repository_bake_file_names_every_stage_and_the_submitter() -> None:
    bake = load_bake(BAKE_FILE)
    assert bake.registry == "registry.local"
    assert bake.tag == "0.1.0"
    for target in (*STAGES, "submitter"):
        assert bake.image(target) == f"registry.local/cybersec-mlops-{target}:0.1.0"
        assert bake.repository(target) == f"cybersec-mlops-{target}"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "registry.example.com/sec/cybersec-mlops-ingest:1.2.3"),
        ({"TAG": "2.0.0"}, "registry.example.com/sec/cybersec-mlops-ingest:2.0.0"),
        ({"REGISTRY": "r.local"}, "r.local/cybersec-mlops-ingest:1.2.3"),
    ],
)
def test_image_expands_variables_without_quotes(tmp_path: Path, overrides: dict[str, str], expected: str) -> None:
    bake = load_bake(write_bake(tmp_path))
    assert bake.image("ingest", **overrides) == expected
    assert '"' not in bake.template("ingest")


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("nope", "no target 'nope' with a tag"),
        ("untagged", "no target 'untagged' with a tag"),
        ("odd", r"uses \$\{MISSING\}, which has no variable default"),
    ],
)
def test_image_errors_name_the_file_and_target(tmp_path: Path, target: str, match: str) -> None:
    path = write_bake(tmp_path)
    with pytest.raises(BakeError, match=match) as info:
        load_bake(path).image(target)
    assert str(path) in str(info.value)


def test_latest_tag_default_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BakeError, match="TAG defaults to 'latest'"):
        load_bake(write_bake(tmp_path, tag="latest"))


def test_missing_tag_variable_is_refused(tmp_path: Path) -> None:
    path = write_bake(tmp_path, text='variable "REGISTRY" {\n  default = "r"\n}\n')
    with pytest.raises(BakeError, match="variable 'TAG' needs a non-empty default"):
        load_bake(path)


def test_missing_bake_file_says_what_it_is(tmp_path: Path) -> None:
    with pytest.raises(BakeError, match="bake file not found"):
        load_bake(tmp_path / "absent.hcl")


def test_repository_requires_the_registry_and_tag_variables(tmp_path: Path) -> None:
    with pytest.raises(BakeError, match="is not"):
        load_bake(write_bake(tmp_path)).repository("odd")
