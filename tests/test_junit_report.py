"""JUnit as Jenkins reads it, and the static HTML report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from hilci.report.html import StageRow, render_html, rows_from_cases, write_reports
from hilci.results import junit
from hilci.results.measurements import distribution, measure


def write_stage(path: Path, stage: str, *cases) -> Path:
    return junit.write_suite(path, f"hilci.{stage}", cases, [("hilci.stage", stage)])


def test_testcases_carry_measurements_as_properties_that_jenkins_keeps(tmp_path: Path):
    m = distribution("loop.latency", [2.0, 3.0, 4.0, 30.0], "ms", high=10.0, nominal="budget 10 ms")
    path = write_stage(tmp_path / "hil.xml", "hil", junit.make_case("end to end loop", "hilci.hil", time=1.5,
                                                                     measurements=[m]))
    root = ET.parse(path).getroot()
    case = root.find("testsuite/testcase")
    assert case.get("classname") == "hilci.hil" and case.get("time") == "1.5"
    props = {p.get("name"): p.get("value") for p in case.findall("properties/property")}
    assert props["loop.latency.verdict"] == "fail" and props["loop.latency.unit"] == "ms"
    failure = case.find("failure")
    assert failure.get("message").startswith("loop latency 29.2")  # p99 of the sample
    assert "above limit 10 ms (budget 10 ms)" in failure.get("message")
    assert root.find("testsuite").get("failures") == "1"


def test_merge_keeps_each_stage_as_its_own_suite_in_order(tmp_path: Path):
    a = write_stage(tmp_path / "a.xml", "build", junit.make_case("wheel", "hilci.build"))
    b = write_stage(tmp_path / "b.xml", "train", junit.make_case("accuracy", "hilci.train",
                                                                 measurements=[measure("acc", 0.5, low=0.9)]))
    merged = junit.merge([a, b], tmp_path / "junit.xml")
    root = ET.parse(merged).getroot()
    assert root.tag == "testsuites"
    assert [s.get("name") for s in root.findall("testsuite")] == ["hilci.build", "hilci.train"]
    assert root.get("tests") == "2" and root.get("failures") == "1"
    records = junit.read_cases(merged)
    assert [(r.suite, r.status) for r in records] == [("hilci.build", "passed"), ("hilci.train", "failed")]


def test_a_unreadable_junit_file_is_named(tmp_path: Path):
    bad = tmp_path / "broken.xml"
    bad.write_text("<testsuite><testcase")
    try:
        junit.read_cases(bad)
    except ValueError as exc:
        assert "broken.xml: not a readable JUnit file" in str(exc)
    else:
        raise AssertionError("a truncated JUnit file was read without complaint")


def test_the_report_shows_stages_failures_and_measurement_plots(tmp_path: Path):
    ok = write_stage(tmp_path / "reports/junit/train.xml", "train",
                     junit.make_case("accuracy", "hilci.train", time=2.0,
                                     measurements=[measure("train.accuracy", 0.99, low=0.95)]))
    bad = write_stage(tmp_path / "reports/junit/hil.xml", "hil",
                      junit.make_case("imu rate", "hilci.hil", time=3.0,
                                      measurements=[measure("imu.rate", 188.2, "Hz", low=196.0,
                                                            nominal="200 Hz -2%")]))
    html_path = write_reports(tmp_path, [ok, bad])
    html = html_path.read_text()
    assert "imu rate 188.2 Hz below limit 196 Hz (200 Hz -2%)" in html
    assert html.count("<svg") >= 3  # timeline + one plot per measurement
    assert "<script" not in html and "http" not in html.replace("http://www.w3.org/2000/svg", "")
    rows = rows_from_cases(junit.read_cases(tmp_path / "reports/junit.xml"))
    assert [(r.name, r.status, r.start_s, r.duration_s) for r in rows] == [("train", "passed", 0.0, 2.0),
                                                                        ("hil", "failed", 2.0, 3.0)]


def test_html_escapes_what_tests_print():
    html = render_html("t", [StageRow("x<y>", "failed", 0, 1)], [])
    assert "x&lt;y&gt;" in html and "x<y>" not in html
