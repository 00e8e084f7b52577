"""The plugin's additions to pytest's JUnit file, made through public pytest APIs only: suite properties known
at the end of the session and a failing test's device traffic as its testcase's `system-out`, found by the
classname and name pytest writes (a class, parameters, `--junit-prefix`), with characters XML cannot carry
escaped."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

from hilci.hil.plugin.junitxml import junit_case_key, xml_text
from tests.scratch import child_env

CONFTEST = """
import pytest
from hilci.hil.plugin import junitxml

def pytest_configure(config):
    junitxml.register(config)

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and report.when == "call":
        report.hil_traffic = f"traffic of {item.name} \\x01 <rx>"
    return report

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    junitxml.suite_properties(session.config, [("host.wakeup.p99_ms", "0.4")])
"""
TESTS = """
import pytest

class TestImu:
    @pytest.mark.parametrize("n", [1, 2])
    def test_rate(self, n):
        assert n == 1

def test_plain():
    pass
"""


def test_traffic_and_late_suite_properties_reach_the_junit_file(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "test_x.py").write_text(TESTS)
    xml = tmp_path / "junit.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
                           "--junit-prefix=orin", "-o", "junit_family=xunit2", "sub"], cwd=tmp_path, env=child_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    root = ET.parse(xml).getroot()  # still well-formed XML after the amendment
    suite = root.find("testsuite")
    assert ("host.wakeup.p99_ms", "0.4") in [(p.get("name"), p.get("value")) for p in suite.iter("property")]
    outs = {(c.get("classname"), c.get("name")): c.findtext("system-out") for c in root.iter("testcase")}
    assert outs[("orin.sub.test_x.TestImu", "test_rate[2]")] == "traffic of test_rate[2] #x01 <rx>"
    assert outs[("orin.sub.test_x.TestImu", "test_rate[1]")] is None  # passed: no traffic
    assert outs[("orin.sub.test_x", "test_plain")] is None


def test_testcase_key_follows_pytest_junit_names():
    assert junit_case_key("hil_tests/test_sensors.py::TestImu::test_rate[imu-a/b::c]", "orin") == (
        "orin.hil_tests.test_sensors.TestImu", "test_rate[imu-a/b::c]")
    assert junit_case_key("test_x.py::test_y") == ("test_x", "test_y")
    assert xml_text("ok\ttab\x00\x1b") == "ok\ttab#x00#x1B"
