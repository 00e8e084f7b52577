"""The project names its pipeline once (hilci.yaml `pipeline:`, or pyproject's [tool.hilci]) and every command
takes one path to root, pipeline, rig and `--only`: `hilci run -n`, `hilci plan` and `hilci run` agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hilci.pipeline.model import Board, Pipeline, Stage
from tests.fixture_pipelines import make_project
from tests.scratch import child_env

REPO = Path(__file__).resolve().parents[1]

# A matrix stage whose pipeline names its own default rig: a real one, so the plan says it always reruns there.
BENCH = Pipeline(
    stages=(Stage(name="probe", pod="cpu", does="a HIL-like stage", entry="tests.fixture_pipelines:behave",
                  matrix=True, rerun_on_real_rig=True),),
    boards=(Board(name="b", rig="rigs/bench.yaml"),),
    default_rig="rigs/bench.yaml",
)

PROJECT_PIPELINE = '''
from hilci.pipeline.model import Pipeline, Stage

import helpers  # another module of the project's own repository: importable because the root is on sys.path


def body(ctx):
    ctx.case(helpers.NAME)


PIPELINE = Pipeline(stages=(Stage(name="only", pod="cpu", does="one stage", entry="mypipe:body",
                                   cacheable=False),))
'''


def hilci(cwd: Path, *args: str, pipeline: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = child_env(PYTHONPATH=str(REPO), CI="true")
    if pipeline:
        env["HILCI_PIPELINE"] = pipeline
    return subprocess.run([sys.executable, "-m", "hilci", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def fixture_project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj", "gen: {}\n")


@pytest.mark.pipeline
def test_run_n_from_a_subfolder_plans_the_root_as_run_does(fixture_project: Path):
    # failed on the old code: `run -n` planned in the working directory ("unknown pod template")
    proc = hilci(fixture_project / "src", "run", "-n", pipeline="tests.fixture_pipelines:PIPELINE")
    assert proc.returncode == 0, proc.stderr
    assert "unknown pod template" not in proc.stderr
    assert "gen" in proc.stdout and "final" in proc.stdout


def test_run_n_refuses_an_empty_only_as_run_does(fixture_project: Path):
    # failed on the old code: `run -n --only ""` planned every stage
    for args in (("run", "-n", "--only", ""), ("plan", "--only", ""), ("run", "--only", "")):
        proc = hilci(fixture_project, *args, pipeline="tests.fixture_pipelines:PIPELINE")
        assert proc.returncode == 2, (args, proc.stdout)
        assert "--only needs stage names" in proc.stderr


@pytest.mark.pipeline
def test_run_n_uses_the_pipelines_own_default_rig(tmp_path: Path):
    # failed on the old code: the plan took hil_tests/rigs/sim.yaml whatever the pipeline said
    root = make_project(tmp_path / "proj", "")
    (root / "rigs").mkdir()
    (root / "rigs" / "bench.yaml").write_text("name: bench\nemulate: false\ndevices: {}\n")
    (root / "podtemplates" / "jetson-b.yaml").write_text("apiVersion: v1\nkind: Pod\n")
    proc = hilci(root, "run", "-n", pipeline="tests.test_project:BENCH")
    assert proc.returncode == 0, proc.stderr
    assert "real rig rigs/bench.yaml: always reruns" in proc.stdout


@pytest.mark.pipeline
def test_a_project_names_its_pipeline_in_hilci_yaml_and_every_command_says_which(tmp_path: Path):
    root = tmp_path / "repo"
    (root / "ci").mkdir(parents=True)  # a folder of the project's own named like hilci's: no collision
    (root / "ci" / "__init__.py").write_text("")
    (root / "mypipe.py").write_text(PROJECT_PIPELINE)
    (root / "helpers.py").write_text("NAME = 'from the project'\n")
    (root / "hilci.yaml").write_text("pipeline: mypipe:PIPELINE\n")
    line = "hilci: pipeline mypipe:PIPELINE (hilci.yaml)"
    for args in (("stages",), ("plan",), ("run", "-n"), ("doctor",), ("jenkinsfile", "--write")):
        proc = hilci(root / "ci", *args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert proc.stdout.splitlines()[0] == line, (args, proc.stdout)
    for args in (("plan", "--json"), ("jenkinsfile",)):  # stdout is data: the line goes to stderr
        proc = hilci(root / "ci", *args)
        assert proc.returncode == 0 and proc.stderr.splitlines() == [line], (args, proc.stderr)
    assert "only " in hilci(root, "stages").stdout
    proc = hilci(root, "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "from the project" in (root / "reports" / "junit" / "only.xml").read_text()
    proc = hilci(root, "stage", "only")
    assert proc.returncode == 0 and line in proc.stdout


def test_the_rendered_jenkinsfile_carries_the_pipeline_and_names_its_module(tmp_path: Path):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "mypipe.py").write_text(PROJECT_PIPELINE)
    (root / "helpers.py").write_text("NAME = 'x'\n")
    (root / "pyproject.toml").write_text('[project]\nname = "robot"\n\n[tool.hilci]\npipeline = "mypipe:PIPELINE"\n')
    proc = hilci(root, "jenkinsfile")
    assert proc.returncode == 0, proc.stderr
    assert "hilci: pipeline mypipe:PIPELINE (pyproject.toml [tool.hilci])" in proc.stderr
    assert "HILCI_PIPELINE = 'mypipe:PIPELINE'" in proc.stdout
    assert "from mypipe.py: edit the definition" in proc.stdout and "ci/definition.py" not in proc.stdout


def test_hilcis_own_jenkinsfile_names_the_example_module():
    text = (REPO / "Jenkinsfile").read_text()
    assert "from ci/example.py: edit the definition" in text
    assert "HILCI_PIPELINE = 'hilci.example:PIPELINE'" in text


@pytest.mark.parametrize(("files", "message"), [
    ({}, "no pipeline named in"),
    ({"hilci.yaml": "pipeline: nosuchmodule:PIPELINE\n"},
     "hilci.yaml: pipeline: pipeline definition 'nosuchmodule:PIPELINE' cannot be loaded "
     "(ModuleNotFoundError: No module named 'nosuchmodule')"),
    ({"hilci.yaml": "pipeline: broken:PIPELINE\n", "broken.py": "raise RuntimeError('half written')\n"},
     "hilci.yaml: pipeline: pipeline definition 'broken:PIPELINE' cannot be loaded (RuntimeError: half written)"),
    ({"hilci.yaml": "pipeline: just_a_name\n"}, "hilci.yaml: pipeline: expected 'module:attr', got 'just_a_name'"),
    ({"pyproject.toml": '[tool.hilci]\npipeline = "helpers:NAME"\n', "helpers.py": "NAME = 1\n"},
     "pyproject.toml [tool.hilci]: pipeline: pipeline definition 'helpers:NAME' is not a hilci.pipeline.model.Pipeline"),
])
def test_a_pipeline_that_cannot_be_loaded_is_one_line_naming_the_file(tmp_path: Path, files: dict, message: str):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "podtemplates").mkdir()
    for rel, text in files.items():
        (root / rel).write_text(text)
    for args in (("run",), ("stages",), ("doctor",)):
        proc = hilci(root, *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    if not files:
        assert "put 'pipeline: mypackage.pipeline:PIPELINE' in hilci.yaml" in proc.stderr


def test_a_board_is_added_in_config(tmp_path: Path):
    root = make_project(tmp_path / "proj", "boards:\n  orin-nano: rigs/nano.yaml\n  agx: rigs/agx.yaml\n")
    for board in ("orin-nano", "agx"):
        (root / "podtemplates" / f"jetson-{board}.yaml").write_text("apiVersion: v1\nkind: Pod\n")
    proc = hilci(root, "jenkinsfile", pipeline="tests.test_project:BENCH")
    assert proc.returncode == 0, proc.stderr
    assert "values 'orin-nano', 'agx'" in proc.stdout and "'b'" not in proc.stdout


def test_a_stage_setting_naming_a_missing_path_is_one_line(tmp_path: Path):
    root = tmp_path / "repo"
    (root / "hil_tests").mkdir(parents=True)
    (root / "hilci.yaml").write_text("pipeline: hilci.example:PIPELINE\nhil:\n  tests: hil_suites\n"
                                     "build:\n  tests: tests\n  lint: [src]\n")
    (root / "tests").mkdir()
    proc = hilci(root, "doctor", "--only", "build,hil")
    assert proc.returncode == 2
    assert "hilci: hilci.yaml: hil.tests: hil_suites: no such file or folder in the project" in proc.stderr
    assert "hilci: hilci.yaml: build.lint: src: no such file or folder in the project" in proc.stderr


X86 = Pipeline(stages=(Stage(name="only", pod="x86", does="one stage", entry="tests.fixture_pipelines:behave"),))


def test_pod_templates_are_optional_for_a_local_run_and_the_plan_assumes_no_cpu_pod(tmp_path: Path):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "hilci.yaml").write_text("only: {}\n")
    for args in (("run", "-n"), ("plan",), ("doctor",), ("run",)):  # no podtemplates/ at all: a local-only project
        proc = hilci(root, *args, pipeline="tests.test_project:X86")
        assert proc.returncode == 0, (args, proc.stdout + proc.stderr)
    (root / "podtemplates").mkdir()
    (root / "podtemplates" / "x86.yaml").write_text("apiVersion: v1\nkind: Pod\n")
    proc = hilci(root, "jenkinsfile", pipeline="tests.test_project:X86")
    assert proc.returncode == 0, proc.stderr
    assert "yamlFile 'podtemplates/x86.yaml'" in proc.stdout and "cpu.yaml" not in proc.stdout
