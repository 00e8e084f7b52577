"""Declared measurements: a test's promised measurements are UNSET rows in the JUnit from the moment it starts;
`gate` replaces them, so a test that fails early shows what it never measured instead of holes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hilci.results.junit import read_cases
from hilci.results.measurements import UNSET, Declared, measure, replace_properties
from tests.scratch import child_env

pytestmark = [pytest.mark.emulator]  # what it needs: the fast tier leaves it out

ROOT = Path(__file__).resolve().parents[1]


def test_gate_rows_replace_the_declared_unset_rows():
    props = Declared("imu.rate", "Hz").properties() + Declared("imu.jitter", "ms", high=5).properties()
    assert ("imu.rate.verdict", UNSET) in props and ("imu.jitter.high", "5") in props
    replace_properties(props, measure("imu.rate", 199.8, "Hz", low=196))
    rows = dict(props)
    assert rows["imu.rate.verdict"] == "pass" and rows["imu.rate.value"] == "199.8"
    assert rows["imu.jitter.verdict"] == UNSET and rows["imu.jitter.value"] == ""
    assert len([k for k, _ in props if k == "imu.rate.verdict"]) == 1


def test_a_test_that_fails_early_leaves_its_declared_measurements_unset(tmp_path):
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump({"name": "m", "emulate": True, "health_timeout_s": 2.0, "devices": {
        "imu": {"driver": "imu", "baud": 921600, "window_s": 0.5, "jitter_p99_ms": 50, "rate_tolerance_pct": 50}}}))
    junit = tmp_path / "junit.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "hil_tests", "--rig", str(rig), f"--junitxml={junit}",
                           "-k", "TestImu and (test_rate or test_jitter)", "--hil-fault", "imu:stall@test_rate",
                           "-q", "-p", "no:cacheprovider"], cwd=ROOT, env=child_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cases = {c.name: c for c in read_cases(junit)}
    stalled = cases["test_rate[imu]"]
    assert stalled.status == "failed" and "stalled" in stalled.message
    assert stalled.measurements["imu.rate"] == {"value": "", "unit": "Hz", "verdict": UNSET}
    assert stalled.measurements["imu.samples"]["verdict"] == UNSET
    jitter = cases["test_jitter[imu]"].measurements["imu.jitter"]
    assert jitter["verdict"] == "pass" and float(jitter["value"]) >= 0
