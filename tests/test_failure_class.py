"""Every failure classed: the code or a gate (`failure`, a JUnit <failure>), the device or rig (`infrastructure`,
a JUnit <error type="infrastructure">), the host (`host`, an inconclusive verdict); the class is a testcase
property the report, the history and the stage's exit code read."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import yaml

from hilci.hil.plugin.failureclass import classify
from hilci.pipeline.model import StageOutcome
from hilci.report.html import write_reports
from hilci.results import junit
from hilci.store.history import failures_of
from tests.test_busy_host import ROOT, SERVO, run_hil

GNSS = {"driver": "gnss", "baud": 115200, "window_s": 0.5}


def element(root: ET.Element, name: str) -> ET.Element:
    case = next(c for c in root.iter("testcase") if c.get("name") == name)
    return next(n for n in case if n.tag in ("failure", "error"))


def test_a_device_that_drops_out_is_an_infrastructure_error_not_a_test_failure(tmp_path):
    proc, cases, root = run_hil(tmp_path, {"name": "sim", "emulate": True, "devices": {"gnss": GNSS}},
                                "-k", "test_rate", "--hil-fault", "gnss:disconnect@test_rate", late_ms=None)
    case = cases["test_rate[gnss]"]
    assert proc.returncode == 1, proc.stdout
    assert case.failure_class == junit.INFRASTRUCTURE, (case.status, case.message, case.properties)
    node = element(root, "test_rate[gnss]")
    assert (node.tag, node.get("type")) == ("error", "infrastructure")
    assert case.status == junit.ERROR and "gnss" in case.message
    suite = next(root.iter("testsuite"))
    assert (suite.get("errors"), suite.get("failures")) == ("1", "0")  # counted where Jenkins counts


def test_a_gate_that_fails_on_a_healthy_device_stays_a_code_failure(tmp_path):
    gnss = {**GNSS, "min_satellites": 99}
    proc, cases, root = run_hil(tmp_path, {"name": "sim", "emulate": True, "devices": {"gnss": gnss}},
                                "-k", "test_data_valid", late_ms=None)
    case = cases["test_data_valid[gnss]"]
    assert proc.returncode == 1
    assert case.failure_class == junit.CODE_FAILURE and case.status == junit.FAILED, case.properties
    assert element(root, "test_data_valid[gnss]").tag == "failure"


def test_a_device_silent_at_session_start_is_infrastructure(tmp_path):
    gnss = {**GNSS, "port": str(tmp_path / "no-such-port")}
    proc, cases, _ = run_hil(tmp_path, {"name": "bench", "emulate": False, "health_timeout_s": 0.3,
                                        "devices": {"gnss": gnss}}, "-k", "test_present", late_ms=None)
    case = cases["test_present[gnss]"]
    assert proc.returncode == 1
    assert case.failure_class == junit.INFRASTRUCTURE and case.status == junit.ERROR, (case.message, case.properties)


def test_a_verdict_the_late_host_made_inconclusive_is_the_hosts(tmp_path):
    proc, cases, _ = run_hil(tmp_path, {"name": "sim", "emulate": True, "devices": {"servo": SERVO}},
                             "-k", "test_roundtrip")
    case = cases["test_roundtrip[servo]"]
    assert proc.returncode == 0 and case.status == junit.PASSED
    assert case.failure_class == junit.HOST


def test_a_dropout_the_device_recovered_from_does_not_excuse_a_different_failure():
    dropped = ["imu at /dev/pts/3: disconnected (read failed)"]
    assert classify("imu gravity 7.1 m/s^2 below limit 9.3", dropped) == junit.CODE_FAILURE
    assert classify("Failed: imu at /dev/pts/3: disconnected (read failed)", dropped) == junit.INFRASTRUCTURE
    assert classify("anything", []) == junit.CODE_FAILURE


# --- what reads the class: the report, the history, the stage's exit code -------------------------------
def classed_suite(path, *, code_failure: bool):
    cases = [junit.make_case("test_rate[gnss]", "hil_tests.test_sensors", error="gnss at /dev/x: disconnected",
                             properties=[(junit.FAILURE_CLASS_PROPERTY, junit.INFRASTRUCTURE),
                                         (junit.RETRIED_PROPERTY, "gnss at /dev/x: disconnected")]),
             junit.make_case("test_jitter[imu]", "hil_tests.test_sensors",
                             properties=[(junit.FAILURE_CLASS_PROPERTY, junit.HOST)])]
    if code_failure:
        cases.append(junit.make_case("test_data_valid[gnss]", "hil_tests.test_sensors",
                                     failure="gnss satellites 4 below limit 99",
                                     properties=[(junit.FAILURE_CLASS_PROPERTY, junit.CODE_FAILURE)]))
    return junit.write_suite(path, "hil.sim", cases, [("hilci.stage", "hil")])


def test_the_report_names_the_rigs_failures_and_the_retries(tmp_path):
    xml = classed_suite(tmp_path / "reports" / "junit" / "hil.xml", code_failure=True)
    index = write_reports(tmp_path, [xml], [StageOutcome("hil", "failed", 0.0, 1.0)])
    text = index.read_text()
    assert "<span class='tag'>infrastructure</span>" in text  # the rig's failure is tagged as such
    assert "<span class='tag'>failed measurement</span>" in text or "<span class='tag'>failed</span>" in text
    assert "(1 for the rig: infrastructure)" in text
    assert "error (infrastructure), retried: gnss at /dev/x: disconnected" in text


def test_history_counts_each_class(tmp_path):
    xml = classed_suite(tmp_path / "hil.xml", code_failure=True)
    assert failures_of(xml) == {"infrastructure": 1, "host": 1, "failure": 1, "retried": 1}


def stage_hil(tmp_path, gnss: dict) -> tuple[int, str]:
    proj = tmp_path / "proj"
    proj.mkdir(parents=True)
    for name in ("hil_tests", "podtemplates"):
        (proj / name).symlink_to(ROOT / name)
    (proj / "hilci.yaml").write_text(yaml.safe_dump({"pipeline": "hilci.example:PIPELINE", "hil": {"pytest_args": [
        "-k", "test_rate or test_data_valid", "--hil-fault", "gnss:disconnect@test_rate"]}}))
    (proj / "rig.yaml").write_text(yaml.safe_dump({"name": "sim", "emulate": True, "health_timeout_s": 2.0,
                                                   "devices": {"gnss": gnss}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HILCI_")}
    env.update({"HILCI_ROOT": str(proj), "CI": "1"})
    proc = subprocess.run([sys.executable, "-m", "hilci", "stage", "hil", "--rig", "rig.yaml"], cwd=proj, env=env,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_a_stage_whose_only_failures_are_the_rigs_exits_3_and_with_a_code_failure_1(tmp_path):
    code, out = stage_hil(tmp_path / "a", GNSS)
    assert code == 3, out  # Jenkins: the stage NOT_BUILT, the build UNSTABLE, never a code FAILURE
    code, out = stage_hil(tmp_path / "b", {**GNSS, "min_satellites": 99})
    assert code == 1, out  # a code failure beside it: a failed gate, as ever
