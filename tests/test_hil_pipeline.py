"""The `hil` stage runs pytest hil_tests on a rig and merges its JUnit; `pytest -n 4` over several emulated rigs
merges into one JUnit file with each rig's tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hilci.example import PIPELINE
from hilci.results.junit import read_cases
from hilci.stage.run import run_stage

pytestmark = [pytest.mark.emulator, pytest.mark.pipeline]  # what it needs: the fast tier leaves it out

ROOT = Path(__file__).resolve().parents[1]


def rig(tmp_path: Path, name: str, devices: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "emulate": True, "health_timeout_s": 1.0, "devices": devices}))
    return path


# These tests check plumbing (stage, xdist, JUnit merge), not timing: budgets leave room for a loaded 2-core host.
IMU = {"driver": "imu", "baud": 921600, "window_s": 0.5, "jitter_p99_ms": 20.0, "rate_tolerance_pct": 10}
SERVO = {"driver": "servo", "baud": 1000000, "roundtrip_samples": 30, "roundtrip_p99_ms": 50.0}


def test_hil_stage_runs_the_suites_and_writes_measurements(tmp_path):
    (tmp_path / "hil_tests").symlink_to(ROOT / "hil_tests")
    (tmp_path / "hilci.yaml").write_text(yaml.safe_dump({"hil": {"pytest_args": ["-k", "test_rate or test_answers"]}}))
    path = rig(tmp_path, "stage", {"imu": IMU, "servo": SERVO})
    code = run_stage(tmp_path, PIPELINE, "hil", rig=path)
    junit = tmp_path / "reports" / "junit" / "hil.xml"
    cases = read_cases(junit)
    assert code == 0, (tmp_path / "artifacts" / "hil" / "pytest-local.log").read_text()
    names = {c.name: c for c in cases}
    assert {"test_rate[imu]", "test_answers[servo]"} <= set(names)
    assert names["test_rate[imu]"].measurements["imu.rate"]["verdict"] == "pass"
    assert {c.suite for c in cases} == {"hil.local"}


def test_missing_rig_is_a_stage_error(tmp_path):
    code = run_stage(tmp_path, PIPELINE, "hil", rig=tmp_path / "absent.yaml")
    cases = read_cases(tmp_path / "reports" / "junit" / "hil.xml")
    assert code == 2 and "absent.yaml: rig file not found" in cases[0].message


@pytest.mark.slow  # 12 emulators beside 4 workers: `make test` runs it, the build stage does not
def test_xdist_over_several_rigs_merges_into_one_junit(tmp_path):
    rigs = [rig(tmp_path, f"r{i}", {"imu": IMU, "servo": SERVO}) for i in range(3)]
    junit = tmp_path / "all.xml"
    args = [a for p in rigs for a in ("--rig", str(p))]
    proc = subprocess.run([sys.executable, "-m", "pytest", "hil_tests", *args, "-n", "4", f"--junitxml={junit}",
                           "-k", "TestImu and test_rate or test_roundtrip", "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = sorted(c.name for c in read_cases(junit))
    assert names == sorted(f"{t}[r{i}:{d}]" for i in range(3) for t, d in (("test_rate", "imu"),
                                                                           ("test_roundtrip", "servo")))
