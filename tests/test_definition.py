"""The pipeline definition and its validation: every invalid shape fails with one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilci.errors import DefinitionError
from hilci.example import PIPELINE
from hilci.pipeline.model import Board, Pipeline, Stage

pytestmark = pytest.mark.smoke  # the tiny suite the build stage runs inside the e2e test


REPO = Path(__file__).resolve().parents[1]


def s(name: str, **kw) -> Stage:
    return Stage(name=name, pod=kw.pop("pod", "cpu"), does="x", entry="tests.fixture_pipelines:behave", **kw)


def test_the_project_definition_is_valid_and_names_the_design_stages():
    PIPELINE.validate(REPO)
    assert PIPELINE.names[0] == "build" and PIPELINE.names[-1] == "report"
    assert set(PIPELINE.names) <= {"build", "train", "quantize", "convert", "hil", "report"}
    for stage in PIPELINE.stages:
        assert stage.command == f"hilci stage {stage.name}"


@pytest.mark.parametrize("stages, message", [
    ((s("a"), s("a")), "duplicate stage name 'a'"),
    ((s("a", needs=("b",)), s("b", needs=("a",))), "cycle in stage needs: a -> b -> a"),
    ((s("a", needs=("a",)),), "cycle in stage needs: a -> a"),
    ((s("a", needs=("ghost",)),), "stage 'a' needs unknown stage 'ghost'"),
    ((s("a", outputs=("out/x",)), s("b", outputs=("out/x/",))),
     "output 'out/x/' is declared by two stages: 'a' and 'b'"),
    ((s("b"), s("a", needs=("c",)), s("c")), "stage 'a' is listed before 'c', which it needs"),
    ((s("bad name"),), "stage name 'bad name' must be letters"),
    ((Stage(name="a", pod="cpu", does="x", entry="no_colon"),), "entry 'no_colon' is not 'module:function'"),
    ((s("a", matrix=True, pod="jetson"),), "matrix stages need at least one board"),
    ((s("a", jobs=0),), "stage 'a': jobs 0 must be a whole number of at least 1, or 'all'"),
    ((s("a", jobs="half"),), "stage 'a': jobs 'half' must be a whole number of at least 1, or 'all'"),
    ((s("a", jobs=1.5),), "stage 'a': jobs 1.5 must be a whole number"),
    ((s("a", jobs=True),), "stage 'a': jobs True must be a whole number"),
])
def test_invalid_definitions_fail_with_one_clear_error(stages, message):
    with pytest.raises(DefinitionError) as err:
        Pipeline(stages=stages).validate()
    assert message in str(err.value)


def test_an_unknown_pod_template_is_named(tmp_path: Path):
    (tmp_path / "podtemplates").mkdir()
    (tmp_path / "podtemplates" / "cpu.yaml").write_text("kind: Pod\n")
    ok = Pipeline(stages=(s("a"),))
    ok.validate(tmp_path)
    with pytest.raises(DefinitionError, match=r"stage 'b': unknown pod template podtemplates/gpu.yaml"):
        Pipeline(stages=(s("a"), s("b", pod="gpu"))).validate(tmp_path)
    matrix = Pipeline(stages=(s("m", pod="jetson", matrix=True),), boards=(Board("orin", "rig.yaml"),))
    with pytest.raises(DefinitionError, match=r"podtemplates/jetson-orin.yaml"):
        matrix.validate(tmp_path)


def test_matrix_stages_run_in_one_template_per_board():
    p = Pipeline(stages=(s("m", pod="jetson", matrix=True),),
                 boards=(Board("orin-nx", "a.yaml"), Board("agx-orin", "b.yaml")))
    assert p.pod_templates(p.stage("m")) == ["podtemplates/jetson-orin-nx.yaml", "podtemplates/jetson-agx-orin.yaml"]
