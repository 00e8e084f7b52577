"""Device logs per test: what each device said during a failing test (NMEA sentences, MAVLink messages,
Dynamixel packets in hex, camera frame headers, each with its time), bounded, written to reports/hil-logs/,
named by the testcase's `hil.log` property and carried in its JUnit `system-out`; passing tests keep none."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from hilci.hil.devicelog import MAX_LINE_CHARS, MAX_LINES, TrafficLog, log_path
from hilci.results import junit

pytestmark = [pytest.mark.emulator]  # what it needs: the fast tier leaves it out

ROOT = Path(__file__).resolve().parents[1]
DEVICES = {
    "imu": {"driver": "imu", "baud": 921600, "window_s": 0.5},
    "gnss": {"driver": "gnss", "baud": 115200, "window_s": 1.0},
    "camera": {"driver": "camera", "baud": 4000000, "rate_hz": 30, "width": 32, "height": 32, "window_s": 0.5},
    "servo": {"driver": "servo", "baud": 1000000},
}
FAULTS = ["gnss:corrupt:fraction=1@TestGnss::test_data_valid", "imu:corrupt:fraction=0.5@TestImu::test_data_valid",
          "camera:corrupt:fraction=0.5@TestCamera::test_data_valid",
          "servo:hw_error@test_hardware_error_clear"]
EXPECTED = {  # failing test -> a line its device log must hold (decoded, per protocol)
    "test_data_valid[gnss]": r"rx \$G[PN]GGA,.*\*[0-9A-F]{2}$",
    "test_data_valid[imu]": r"rx seq=\d+ HIGHRES_IMU \{",
    "test_data_valid[camera]": r"rx frame seq=\d+ 32x32 crc=[0-9a-f]{8}$",
    "test_hardware_error_clear[servo]": r"tx ff ff fd 00 01 ",
}
PROBLEM = {"test_data_valid[gnss]": "!! bad checksum", "test_data_valid[imu]": "!! bad data",
           "test_data_valid[camera]": "bad CRC-32", "test_hardware_error_clear[servo]": "rx ff ff fd 00 01 "}


def test_a_failing_test_keeps_its_device_traffic_and_a_passing_one_none(tmp_path):
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump({"name": "sim", "emulate": True, "health_timeout_s": 2.0, "devices": DEVICES}))
    xml, logs = tmp_path / "junit.xml", tmp_path / "hil-logs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HILCI_")}
    args = [a for f in FAULTS for a in ("--hil-fault", f)]
    proc = subprocess.run([sys.executable, "-m", "pytest", "hil_tests", "--rig", str(rig), f"--junitxml={xml}",
                           f"--hil-logs={logs}", "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit2",
                           "-k", "test_data_valid or test_hardware_error_clear or test_answers", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cases = {c.name: c for c in junit.read_cases(xml)}
    outs = {tc.get("name"): (tc.findtext("system-out") or "") for tc in ET.parse(xml).getroot().iter("testcase")}
    for name, pattern in EXPECTED.items():
        assert cases[name].status == "failed", (name, proc.stdout)
        path = Path(dict(cases[name].properties)["hil.log"])
        text = path.read_text()
        assert path.parent == logs and text == outs[name], name  # the file and the JUnit say the same
        lines = text.splitlines()
        assert re.search(r"^== \w+ at .*: \d+ lines", lines[0]), lines[0]
        assert any(re.search(r"^\s*\d+\.\d{6} " + pattern, line) for line in lines), (name, text[:2000])
        assert PROBLEM[name] in text, (name, text[:2000])
        assert len(lines) <= MAX_LINES + 2 and max(map(len, lines)) <= MAX_LINE_CHARS + 20  # bounded
    passed = cases["test_answers[servo]"]
    assert passed.status == "passed" and "hil.log" not in dict(passed.properties)
    assert not outs["test_answers[servo]"]
    assert len(list(logs.iterdir())) == len(EXPECTED)  # one file per failing test, none for passing ones


def test_the_log_is_bounded_and_says_how_much_it_dropped():
    log = TrafficLog("imu at /dev/ttyACM0", max_lines=5)
    for i in range(1000):
        log.add("rx", f"message {i} " + "x" * 500)
    lines = log.text().splitlines()
    assert lines[0] == "== imu at /dev/ttyACM0: 1000 lines, the last 5 kept"
    assert len(lines) == 6 and "message 999" in lines[-1] and len(lines[-1]) <= MAX_LINE_CHARS + 20
    log.restart()
    assert log.text() == "== imu at /dev/ttyACM0: 0 lines"


def test_log_files_are_named_after_the_test():
    folder = Path("reports/hil-logs")
    assert log_path(folder, "hil_tests/test_sensors.py::TestImu::test_rate[imu]") == \
        folder / "test_sensors.TestImu.test_rate[imu].log"
    assert log_path(folder, "hil_tests/test_x.py::test_y[a/b c]").name == "test_x.test_y[a_b_c].log"


def test_hilci_run_keeps_the_device_log_with_the_stage_and_the_report_links_it(tmp_path):
    """The path a user takes: `hilci run --only hil`; the failing test's log lies in artifacts/hil/hil-logs/
    (archived with the stage in Jenkins) and reports/index.html links it by a path that resolves."""
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("hil_tests", "podtemplates"):
        (proj / name).symlink_to(ROOT / name)
    (proj / "hilci.yaml").write_text(yaml.safe_dump({"pipeline": "hilci.example:PIPELINE", "hil": {"pytest_args": [
        "-k", "test_data_valid", "--hil-fault", "gnss:corrupt:fraction=1@TestGnss::test_data_valid"]}}))
    (proj / "rig.yaml").write_text(yaml.safe_dump({"name": "sim", "emulate": True, "health_timeout_s": 2.0,
                                                   "devices": {"gnss": DEVICES["gnss"]}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HILCI_")}
    env.update({"HILCI_ROOT": str(proj), "CI": "1"})
    proc = subprocess.run([sys.executable, "-m", "hilci", "run", "--only", "hil", "--rig", "rig.yaml", "--no-cache"],
                          cwd=proj, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    case = next(c for c in junit.read_cases(proj / "reports" / "junit.xml") if c.name == "test_data_valid[gnss]")
    assert case.status == "failed" and case.device_log.startswith("artifacts/hil/hil-logs/"), case.properties
    assert "bad checksum" in (proj / case.device_log).read_text()
    page = (proj / "reports" / "index.html").read_text()
    href = re.search(r"<a class='devlog' href='([^']+)'", page).group(1)
    assert (proj / "reports" / href).resolve() == (proj / case.device_log).resolve()
