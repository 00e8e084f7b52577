"""A user's path, end to end: hilci's wheel (built from this checkout) installed without -e into a fresh venv,
a repository of the user's own that has `ci/`, `tests/` and `conversion/` folders (the names hilci's checkout
uses), `hilci init`, the motor kind of docs/library.md shipped as a tiny package with an entry point, two HIL
tests of it, `hilci run` green and the rendered Jenkinsfile checked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from tests.scratch import child_env
from tests.test_kind_plugins import documented_motor_module, documented_motor_tests

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.pipeline]

KIND_PYPROJECT = '''\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "motorctl"
version = "0.1.0"
dependencies = ["hilci", "pyserial"]

[project.entry-points."hilci.kinds"]
motor = "motorctl"
'''


def run(cmd: list[str], cwd: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    full = child_env(**env)
    full.pop("PYTHONPATH", None)
    full.pop("VIRTUAL_ENV", None)
    return subprocess.run(cmd, cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout)


def checkout_copy(dest: Path) -> Path:
    """The checkout's files as a clone has them, symlinks kept (ci/conversion is one)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True, timeout=60).stdout.split("\0")
    for rel in filter(None, files):
        src, out = REPO / rel, dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), out)
        elif src.is_file():
            shutil.copy2(src, out)
    return dest


def build_wheel(src: Path, out: Path) -> Path:
    proc = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                str(src)], cwd=src)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return next(out.glob("*.whl"))


def fresh_venv(path: Path) -> Path:
    """A venv whose site-packages sees the test venv's dependencies (a .pth line) but not its hilci: the
    editable install's own .pth files are not run from a folder a .pth line adds."""
    proc = run([sys.executable, "-m", "venv", "--without-pip", str(path)], cwd=path.parent)
    assert proc.returncode == 0, proc.stderr
    python = path / "bin" / "python"
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=path).stdout
    Path(site.strip(), "zz_test_venv_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def pip_install(python: Path, wheel: Path) -> None:
    proc = run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                str(wheel)], cwd=wheel.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_user_repository_adopts_hilci_from_its_wheel(tmp_path: Path):
    wheels = tmp_path / "wheels"
    hilci_wheel = build_wheel(checkout_copy(tmp_path / "checkout"), wheels)
    python = fresh_venv(tmp_path / "venv")
    pip_install(python, hilci_wheel)
    hilci = str(python.parent / "hilci")

    kind = tmp_path / "motorctl"
    (kind / "motorctl").mkdir(parents=True)
    (kind / "motorctl" / "__init__.py").write_text(documented_motor_module())
    (kind / "pyproject.toml").write_text(KIND_PYPROJECT)
    pip_install(python, build_wheel(kind, wheels / "kind"))

    repo = tmp_path / "warehouse-robot"
    for folder in ("ci", "tests", "conversion"):  # the user's own, named as hilci's checkout names its folders
        (repo / folder).mkdir(parents=True)
        (repo / folder / "__init__.py").write_text(f"WHOSE = 'the user {folder}'\n")
    (repo / "ci" / "hil.py").write_text("")
    where = run([str(python), "-c", "import hilci, hilci.hil.registry, ci; print(hilci.__file__); print(ci.WHOSE)"],
                cwd=repo)
    assert where.returncode == 0, where.stderr
    hilci_file, whose = where.stdout.split()[0], where.stdout.split("\n")[1]
    assert Path(hilci_file).is_relative_to(tmp_path / "venv"), hilci_file  # the wheel, not the checkout
    assert whose == "the user ci"
    assert run(["git", "init", "-q"], cwd=repo).returncode == 0

    init = run([hilci, "init"], cwd=repo)
    assert init.returncode == 0, init.stderr
    assert "wrote hilci_pipeline.py" in init.stdout and "wrote Jenkinsfile" in init.stdout

    rig_path = repo / "hil_tests" / "rigs" / "sim.yaml"
    rig = yaml.safe_load(rig_path.read_text())
    rig["devices"]["motor"] = {"driver": "motor", "baud": 115200, "ident": "MC1"}
    rig_path.write_text(yaml.safe_dump(rig))
    (repo / "hil_tests" / "test_motor.py").write_text(documented_motor_tests())

    doctor = run([hilci, "doctor"], cwd=repo)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "hilci: pipeline hilci_pipeline:PIPELINE (hilci.yaml)" in doctor.stdout

    result = run([hilci, "run"], cwd=repo, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3/3 stages passed" in result.stdout
    junit = (repo / "reports" / "junit.xml").read_text()
    assert "test_motor_reaches_speed_and_stops" in junit and "test_motor_answers_its_id" in junit
    assert "motor.speed.value" in junit

    check = run([hilci, "jenkinsfile", "--check"], cwd=repo)
    assert check.returncode == 0, check.stdout + check.stderr
