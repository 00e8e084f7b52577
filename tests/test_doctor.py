"""`hilci doctor` and `hilci run` on a machine that lacks a tool: each missing tool named, with its install command.

The machine is made to lack Groovy the honest way: PATH stripped to a folder holding only what Python needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hilci import doctor
from hilci.example import PIPELINE
from hilci.pipeline.model import Stage
from hilci.util import extras
from tests.conftest import hilci

ROOT = Path(__file__).resolve().parents[1]


def bare_path(tmp_path: Path) -> str:
    """A PATH with no groovy and no java (only an empty folder): what a fresh machine has of them."""
    empty = tmp_path / "bin"
    empty.mkdir()
    return str(empty)


def hilci_bare(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`hilci ARGS` in the repository with a PATH that holds only what `bare_path` links."""
    return hilci(ROOT, *args, pipeline="", env={"PATH": bare_path(tmp_path)})


def test_build_declares_groovy_and_java():
    assert {"groovy", "java"} <= set(PIPELINE.stage("build").needs_tools)


def test_doctor_names_groovy_with_its_install_command(tmp_path):
    proc = hilci_bare(tmp_path, "doctor")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    sudo = "" if os.geteuid() == 0 else "sudo "
    assert f"hilci: groovy is missing (needed by build): {sudo}apt-get install -y groovy" in proc.stderr
    assert "hilci: java is missing (needed by build)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_doctor_checks_only_the_stages_asked(tmp_path):
    proc = hilci_bare(tmp_path, "doctor", "--only", "report")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "hilci: pipeline hilci.example:PIPELINE (hilci.yaml)"  # which pipeline
    assert proc.stdout.splitlines()[1].startswith("ok: 1 stage ready")


def test_run_refuses_to_start_without_groovy(tmp_path):
    proc = hilci_bare(tmp_path, "run", "--only", "build")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "groovy is missing (needed by build)" in proc.stderr and "apt-get install -y groovy" in proc.stderr
    # groovy, java, make and pgrep (the unit tests run both; procps provides pgrep), one line each, and the count
    assert len(proc.stderr.strip().splitlines()) == 5
    assert "pgrep is missing (needed by build): " in proc.stderr and "apt-get install -y procps" in proc.stderr
    assert "4 problems found before the first stage; nothing was run" in proc.stderr
    assert "build" not in proc.stdout  # no stage started, no summary row


def test_doctor_passes_here():
    if not all(doctor.is_installed(t) for s in PIPELINE.stages for t in s.needs_tools):
        pytest.skip("this machine lacks a tool; the test above shows what doctor says then")
    proc = subprocess.run([sys.executable, "-m", "hilci", "doctor"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "groovy" in proc.stdout


def test_a_missing_python_package_names_its_extra_for_hilcis_stages_and_itself_for_a_projects(monkeypatch):
    monkeypatch.setattr(doctor, "is_installed", lambda tool: False)  # as on a machine with none of them
    own = Stage(name="cam", pod="cpu", does="x", entry="hilci.builtin.hil:hil", needs_tools=("cv2",))
    theirs = Stage(name="lidar", pod="cpu", does="x", entry="robot.stages:lidar",
                   needs_tools=("hilci_absent_pkg", "cv2", "groovy"))
    assert [m.line() for m in doctor.missing_tools([own])] == [
        "opencv is missing (needed by cam): pip install 'hilci[jetson]'"]
    lines = [m.line() for m in doctor.missing_tools([theirs])]
    # failed on the old code: a project's own tool was named with an extra of hilci's
    assert "opencv is missing (needed by lidar): pip install opencv-python-headless" in lines
    assert "hilci_absent_pkg is missing (needed by lidar): install it (neither a program on PATH nor an " \
           "importable Python package)" in lines
    assert any(ln.startswith("groovy is missing (needed by lidar): ") and ln.endswith("apt-get install -y groovy")
               for ln in lines)
    assert not any("hilci[" in ln for ln in lines)


def test_require_names_the_extra_once(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if OpenCV were not installed
    with pytest.raises(extras.MissingExtra) as err:
        extras.require("cv2")
    assert str(err.value) == "opencv is missing: pip install 'hilci[jetson]'"
    assert err.value.__cause__ is None and err.value.__suppress_context__
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"onnxruntime is missing: pip install 'hilci\[train\]'"):
        extras.require("onnxruntime")


def test_a_package_broken_inside_keeps_its_own_error(tmp_path, monkeypatch):
    pkg = tmp_path / "hilci_broken_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import hilci_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="hilci_absent_dependency") as err:
        extras.require("hilci_broken_pkg")
    assert not isinstance(err.value, extras.MissingExtra)


def test_the_onnxruntime_engine_names_the_extra(monkeypatch, tmp_path):
    from hilci.conversion.engines import load_engine

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not really onnx")
    with pytest.raises(ImportError, match=r"onnxruntime is missing: pip install 'hilci\[train\]'"):
        load_engine(model)


def test_a_stage_without_its_package_is_one_line_in_its_junit(tmp_path):
    """`hilci stage train` where torch is missing (as Jenkins runs it, with no preflight): exit 2, one line
    naming the extra, in the output and in the stage's JUnit, no traceback."""
    from hilci.results import junit

    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HILCI_ROOT", "HILCI_PIPELINE")}
    env.update(PYTHONPATH=str(blocker), HILCI_ROOT=str(tmp_path), HILCI_PIPELINE="hilci.example:PIPELINE")
    proc = subprocess.run([sys.executable, "-m", "hilci", "stage", "train"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "ERROR torch is missing: pip install 'hilci[train]'" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    cases = junit.read_cases(tmp_path / "reports" / "junit" / "train.xml")
    assert [c.message for c in cases] == ["torch is missing: pip install 'hilci[train]'"]
