"""JUnit read, write and merge, with testcase <properties> that Jenkins keeps (`keepProperties: true`).

Written with junitparser's xunit2 classes: they can put properties on a testcase, which the junit-xml package
cannot. Readers get plain `CaseRecord`s so the report, `hilci results` and the runner never touch XML.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from junitparser import Error, Failure, Skipped
from junitparser.xunit2 import JUnitXml, TestCase, TestSuite

from hilci.pipeline.model import Status
from hilci.results.measurements import Measurement, parse_properties

PASSED, FAILED, ERROR, SKIPPED = Status.PASSED, Status.FAILED, Status.ERROR, Status.SKIPPED
# A failing testcase's device traffic: the log file's path, relative to the folder the tests ran in (the
# project root), so the report under reports/ links it wherever the run's files are opened or archived.
DEVICE_LOG_PROPERTY = "hil.log"
# Why a testcase failed: our code or a model gate (`failure`), the device or rig (`infrastructure`: a port gone,
# a device silent or rebooting, a lock that timed out), or the host (`host`: a verdict it made inconclusive).
# An infrastructure failure is also written as `<error type="infrastructure">`, which Jenkins shows as an error.
FAILURE_CLASS_PROPERTY = "hil.failure_class"
RETRIED_PROPERTY = "hil.retried"  # set on a test run again after its device was brought back: why
CODE_FAILURE, INFRASTRUCTURE, HOST = "failure", "infrastructure", "host"


@dataclass
class CaseRecord:
    """One testcase as read back: what the report and the CLI show."""

    suite: str
    classname: str
    name: str
    time: float
    status: str  # passed | failed | error | skipped
    message: str = ""
    text: str = ""
    properties: list[tuple[str, str]] = field(default_factory=list)

    @property
    def measurements(self) -> dict[str, dict[str, str]]:
        return parse_properties(self.properties)

    @property
    def device_log(self) -> str:
        return dict(self.properties).get(DEVICE_LOG_PROPERTY, "")

    @property
    def failure_class(self) -> str:
        """`failure`, `infrastructure` or `host` as the HIL plugin classed the testcase; a failed testcase
        without a class (a gate, a stage error) is a `failure`; '' for one that passed or was skipped."""
        named = dict(self.properties).get(FAILURE_CLASS_PROPERTY, "")
        if named:
            return named
        return CODE_FAILURE if self.status in (FAILED, ERROR) else ""

    @property
    def retried(self) -> str:
        return dict(self.properties).get(RETRIED_PROPERTY, "")


def make_case(name: str, classname: str, *, time: float = 0.0,
              measurements: Iterable[Measurement] = (), properties: Iterable[tuple[str, str]] = (),
              failure: str | None = None, error: str | None = None, skipped: str | None = None,
              details: str = "", stdout: str = "") -> TestCase:
    """A testcase; a failing measurement without an explicit failure becomes the failure message."""
    case = TestCase(name, classname, round(time, 3))
    measurements = list(measurements)
    for key, value in properties:
        case.add_property(key, value)
    for m in measurements:
        for key, value in m.properties():
            case.add_property(key, value)
    if failure is None and error is None and skipped is None:
        failed = [m.message() for m in measurements if not m.passed]
        if failed:
            failure = "; ".join(failed)
    if error is not None:
        result = Error(error, "error")
    elif failure is not None:
        result = Failure(failure, "failure")
    elif skipped is not None:
        result = Skipped(skipped)
    else:
        result = None
    if result is not None:
        if details:
            result.text = details
        case.result = [result]
    if stdout:
        case.system_out = stdout
    return case


def write_suite(path: Path, suite_name: str, cases: Iterable[TestCase],
                properties: Iterable[tuple[str, str]] = ()) -> Path:
    """Write one suite (one stage) to `path`; suite names must be distinct (Jenkins merges equal names)."""
    suite = TestSuite(suite_name)
    for key, value in properties:
        suite.add_property(key, value)
    for case in cases:
        suite.add_testcase(case)
    suite.update_statistics()
    suite.time = round(sum(float(c.time or 0) for c in suite), 3)
    xml = JUnitXml()
    xml.add_testsuite(suite)
    xml.update_statistics()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    xml.write(str(tmp), pretty=True)
    tmp.replace(path)
    return path


def merge(paths: Iterable[Path], out: Path) -> Path:
    """Merge JUnit files into one <testsuites> (each suite kept whole, in the given order)."""
    merged = JUnitXml()
    for path in paths:
        for suite in _suites(JUnitXml.fromfile(str(path))):
            merged.add_testsuite(suite)
    merged.update_statistics()
    out.parent.mkdir(parents=True, exist_ok=True)
    merged.write(str(out), pretty=True)
    return out


def _suites(xml) -> list:
    if isinstance(xml, TestSuite) or getattr(xml, "_tag", "") == "testsuite":
        return [xml]
    return list(xml)


def with_suite_properties(src: Path, out: Path, properties: Iterable[tuple[str, str]]) -> Path:
    """Copy a JUnit file, adding properties to every suite (e.g. that a cached stage's result is restored)."""
    tree = ET.parse(src)
    root = tree.getroot()
    for suite in [root] if root.tag == "testsuite" else root.iter("testsuite"):
        props = suite.find("properties")
        if props is None:
            props = ET.Element("properties")
            suite.insert(0, props)
        for name, value in properties:
            ET.SubElement(props, "property", name=name, value=value)
    tree.write(out, encoding="utf-8", xml_declaration=True)
    return out


def read_cases(path: Path) -> list[CaseRecord]:
    """Every testcase of a JUnit file (one suite or many), with status, message and properties."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ValueError(f"{path}: not a readable JUnit file ({exc})") from exc
    return cases_from_element(root)


def cases_from_element(root: ET.Element) -> list[CaseRecord]:
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    records = []
    for suite in suites:
        for case in suite.findall("testcase"):
            records.append(_record(suite.get("name", ""), case))
    return records


def _record(suite: str, case: ET.Element) -> CaseRecord:
    status, message, text = PASSED, "", ""
    for tag, kind in (("error", ERROR), ("failure", FAILED), ("skipped", SKIPPED)):
        node = case.find(tag)
        if node is not None:
            status, message, text = kind, node.get("message", ""), (node.text or "")
            break
    props = [(p.get("name", ""), p.get("value", "")) for p in case.findall("properties/property")]
    return CaseRecord(suite=suite, classname=case.get("classname", ""), name=case.get("name", ""),
                      time=float(case.get("time") or 0), status=status, message=message, text=text,
                      properties=props)
