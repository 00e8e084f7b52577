"""hilci.yaml read through typed settings, and everything `hilci run` checks before its first stage.

Each bad input is one line naming the file and the dotted field, exit 2, no traceback, nothing run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hilci import cli
from hilci.errors import DefinitionError, UsageError
from hilci.example import PIPELINE
from hilci.pipeline import config
from hilci.pipeline.model import Pipeline, Stage
from hilci.pipeline.project import find_root

ROOT = Path(__file__).resolve().parents[1]
SIM_RIG = ROOT / "hil_tests" / "rigs" / "sim.yaml"


@pytest.fixture(autouse=True)
def example_pipeline(monkeypatch):
    """These projects hold the settings of hilci's example pipeline, named the way a run names one."""
    monkeypatch.setenv("HILCI_PIPELINE", "hilci.example:PIPELINE")


def project(tmp_path: Path, hilci_yaml: str | bytes | None) -> Path:
    """A project root the real pipeline can be checked in: pod templates, the sim rig and this hilci.yaml."""
    shutil.copytree(ROOT / "podtemplates", tmp_path / "podtemplates")
    (tmp_path / "hil_tests" / "rigs").mkdir(parents=True)
    (tmp_path / "tests").mkdir()  # the build stage's unit tests (its `tests` setting)
    shutil.copy(SIM_RIG, tmp_path / "hil_tests" / "rigs" / "sim.yaml")
    if isinstance(hilci_yaml, bytes):
        (tmp_path / "hilci.yaml").write_bytes(hilci_yaml)
    elif hilci_yaml is not None:
        (tmp_path / "hilci.yaml").write_text(hilci_yaml)
    return tmp_path


def run(root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("HILCI_ROOT", "HILCI_PIPELINE")}
    env["HILCI_PIPELINE"] = "hilci.example:PIPELINE"  # these projects hold hilci's example's settings
    return subprocess.run([sys.executable, "-m", "hilci", "run", *args], cwd=cwd or root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_committed_hilci_yaml_is_valid():
    cfg = config.load(ROOT, PIPELINE)
    assert cfg.settings("train").epochs == 10 and cfg.settings("hil").pytest_args == []
    assert cfg.section("convert")["budgets"] == {"p99_ms": 10.0, "mean_ms": 5.0}  # unset budgets left out


@pytest.mark.parametrize(("text", "line"), [
    ("hil:\n  pytest_argz: ['-x']\n", "hilci.yaml: hil.pytest_argz: unknown setting (did you mean 'pytest_args'?)"),
    ("report:\n  titel: x\n", "hilci.yaml: report.titel: unknown setting (did you mean 'title'?)"),
    ("report:\n  title: [1, 2]\n", "hilci.yaml: report.title: expected a non-empty string, got [1, 2]"),
    ("convert:\n  benchmark:\n    warmup_s: null\n",
     "hilci.yaml: convert.benchmark.warmup_s: expected a number >= 0 <= 3600.0, got None"),
    ("convert:\n  benchmark:\n    duration_s: 1.0e+300\n",
     "hilci.yaml: convert.benchmark.duration_s: expected a number >= 0 <= 3600.0, got 1e+300"),
    ("train:\n  epochz: 3\n", "hilci.yaml: train.epochz: unknown setting (did you mean 'epochs'?)"),
    ("hil:\n  timeout_s: -1\n", "hilci.yaml: hil.timeout_s: expected a number > 0"),
    ("convert:\n  budgets:\n    p99: 3\n", "hilci.yaml: convert.budgets.p99: unknown setting (did you mean 'p99_ms'?)"),
    ("quantize:\n  opset: 11\n", "hilci.yaml: quantize.opset: expected a whole number >= 13"),
    ("convert:\n  onnxruntime:\n    intra_op_thread: 2\n",
     "hilci.yaml: convert.onnxruntime.intra_op_thread: unknown setting (did you mean 'intra_op_threads'?)"),
    ("convert:\n  tensorrt:\n    workspace_mb: 2\n",
     "hilci.yaml: convert.tensorrt.workspace_mb: unknown setting (did you mean 'workspace_mib'?)"),
    ("trian:\n  epochs: 3\n", "hilci.yaml: trian: unknown section (did you mean 'train'?)"),
    ("store: [1]\n", "hilci.yaml: store: expected a URL or a path, got [1]"),
    ("- train\n", "hilci.yaml: expected a mapping of stage names to settings, got list"),
    ("train: {epochs: 3\n", "hilci.yaml: line 2: malformed YAML"),
])
def test_each_bad_setting_is_one_line_naming_file_and_field(tmp_path, capsys, monkeypatch, text, line):
    root = project(tmp_path, text)
    monkeypatch.setenv("HILCI_ROOT", str(root))
    assert cli.main(["run", "--rig", str(SIM_RIG)]) == 2
    err = capsys.readouterr().err
    assert f"hilci: error: {line}" in err, err
    assert not (root / "reports").exists(), "nothing may run before the configuration is sound"


def test_a_store_url_is_accepted(tmp_path):
    root = project(tmp_path, "store: s3://hilci/cache\ntrain:\n  epochs: 2\n")
    cfg = config.load(root, PIPELINE)
    assert cfg.store == "s3://hilci/cache" and cfg.section("train")["epochs"] == 2


def test_binary_hilci_yaml_is_one_line_without_traceback(tmp_path):
    root = project(tmp_path, bytes(range(256)) * 4)
    proc = run(root, "--rig", str(SIM_RIG))
    assert proc.returncode == 2, proc.stderr
    assert "hilci.yaml: not a UTF-8 text file" in proc.stderr
    assert "Traceback" not in proc.stderr and not (root / "reports").exists()


def test_every_problem_is_named_at_once_before_the_first_stage(tmp_path):
    root = project(tmp_path, "train:\n  epochz: 3\nhil:\n  pytest_argz: []\nreport:\n  title: [1, 2]\n")
    rig = yaml.safe_load(SIM_RIG.read_text())
    first = next(iter(rig["devices"]))
    rig["devices"][first]["rate_hzz"] = 5
    (root / "bad-rig.yaml").write_text(yaml.safe_dump(rig))
    proc = run(root, "--rig", "bad-rig.yaml")
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("hilci: error:")]
    assert any("train.epochz" in ln for ln in lines) and any("hil.pytest_argz" in ln for ln in lines)
    assert any("report.title" in ln for ln in lines)
    assert any(f"devices.{first}.rate_hzz" in ln for ln in lines), lines
    assert "4 problems found before the first stage; nothing was run" in proc.stderr
    assert "Traceback" not in proc.stderr and not (root / "reports").exists()


def test_a_subfolder_finds_the_project_root(tmp_path, monkeypatch):
    monkeypatch.delenv("HILCI_ROOT", raising=False)
    root = project(tmp_path, "train:\n  epochs: 2\n")
    deep = root / "hil_tests" / "rigs"
    assert find_root(PIPELINE, deep) == root
    monkeypatch.chdir(deep)
    assert find_root(PIPELINE) == root


def test_outside_a_project_says_where_to_run(tmp_path, monkeypatch):
    monkeypatch.delenv("HILCI_ROOT", raising=False)
    with pytest.raises(UsageError, match="no hilci.yaml or podtemplates/ in .* or above it: run hilci in the "
                                         "project's root folder"):
        find_root(PIPELINE, tmp_path)


def test_run_from_a_subfolder_checks_the_root_and_not_the_subfolder(tmp_path):
    root = project(tmp_path, "report:\n  titel: x\n")
    proc = run(root, "--rig", str(SIM_RIG), cwd=root / "hil_tests")
    assert proc.returncode == 2
    assert "report.titel" in proc.stderr and "unknown pod template" not in proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--only", ""], "--only needs stage names"),
    (["--only", "train,"], "--only needs stage names"),
    (["--only", "build", "--from", "train"], "--only build comes before --from train"),
    (["--only", "trian"], "unknown stage 'trian'"),
])
def test_only_and_from_usage_errors(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setenv("HILCI_ROOT", str(project(tmp_path, None)))
    assert cli.main(["run", *args]) == 2
    assert message in capsys.readouterr().err


def test_only_at_or_after_from_is_fine():
    assert [s.name for s in PIPELINE.select(("hil", "report"), "convert")] == ["hil", "report"]


def _stage(**kw) -> Stage:
    return Stage(**{"name": "x", "pod": "cpu", "does": "x", "entry": "hilci.builtin.stages:build", **kw})


@pytest.mark.parametrize(("kw", "message"), [
    ({"entry": "hilci.builtin.stages:buidl"}, "entry 'hilci.builtin.stages:buidl': hilci.builtin.stages defines no buidl"),
    ({"entry": "hilci.stagez:build"}, "entry 'hilci.stagez:build': no module hilci.stagez"),
    ({"entry": "nopackage.sub:build"}, "no module nopackage.sub"),
    ({"entry": "hilci.builtin.stages"}, "is not 'module:function'"),
    ({"settings": "hilci.conversion.settings:TrainSetings"}, "hilci.conversion.settings defines no TrainSetings"),
])
def test_validate_resolves_every_entry_without_importing_it(kw, message):
    with pytest.raises(DefinitionError, match=message):
        Pipeline(stages=(_stage(**kw),)).validate()


def test_validating_the_definition_imports_no_stage_body():
    code = ("import sys; from hilci.example import PIPELINE; PIPELINE.validate(); "
            "print(sorted(m for m in ('torch', 'hilci.conversion.stages', 'hilci.builtin.stages', 'hilci.builtin.hil') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_manifest_with_wrong_typed_fields_is_one_line(tmp_path, capsys, monkeypatch):
    from hilci.conversion import manifest

    art = tmp_path / "engine.onnx"
    art.write_bytes(b"x")
    manifest.write_manifest(art, "engine")
    path = manifest.manifest_path(art)
    good = yaml.safe_load(path.read_text())
    for field, value, expected in (("size", "big", "size: expected a whole number"),
                                   ("inputs", {"onnx": {"path": 3}}, "inputs.onnx.path: expected a string"),
                                   ("inputs", ["a"], "inputs: expected a mapping"),
                                   ("sha256", "xyz", "sha256: expected 64 lowercase hex digits")):
        path.write_text(__import__("json").dumps({**good, field: value}))
        with pytest.raises(manifest.ManifestError, match=expected) as err:
            manifest.read_manifest(art)
        assert str(err.value).startswith(str(path))
        assert cli.main(["trace", str(art)]) == 2
        err_text = capsys.readouterr().err
        assert expected in err_text and "Traceback" not in err_text


def test_jenkinsfile_honours_pipeline_as_run_does(tmp_path, capsys, monkeypatch):
    from tests.fixture_pipelines import make_project

    monkeypatch.setenv("HILCI_ROOT", str(make_project(tmp_path, "")))
    assert cli.main(["jenkinsfile", "--pipeline", "tests.fixture_pipelines:PIPELINE"]) == 0
    text = capsys.readouterr().out
    assert "stage('gen')" in text and "stage('final')" in text and "stage('train')" not in text
