"""What the plugin adds to the JUnit file pytest writes: suite properties known only at the end of the session
(the host's wake-up latency) and a failing testcase's `system-out` (its device traffic).

pytest's public `record_*` fixtures cannot add either (a fixture has ended before they are known), so the plugin
amends the file once pytest's own `pytest_sessionfinish` has written it, finding a testcase by the classname and
name pytest's JUnit gives every test id. Nothing here when the run writes no JUnit (no `--junitxml`), nor on an
xdist worker (the controller writes the file).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

import pytest

PLUGIN_NAME = "hilci-junit-amendments"
# characters XML 1.0 cannot carry; written as #xNN, as pytest writes them in its own output
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"#x{ord(m.group()):02X}", text)


def junit_case_key(nodeid: str, prefix: str | None = None) -> tuple[str, str]:
    """The (classname, name) pytest's JUnit writes for a test id: the path dotted without `.py`, then the
    classes; the name is the function with its parameters; `--junit-prefix` goes in front of the classname."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    if prefix:
        names.insert(0, prefix)
    return ".".join(names[:-1]), names[-1]


class JUnitAmendments:
    """Collects what goes into the JUnit file during the run and writes it in once pytest has written the file."""

    def __init__(self, config: pytest.Config, path: Path):
        self.config = config
        self.path = path
        self.suite: list[tuple[str, str]] = []
        self.outputs: dict[str, str] = {}  # test id -> text for its testcase's system-out

    def pytest_runtest_logreport(self, report) -> None:
        text = getattr(report, "hil_traffic", None)
        if text:
            self.outputs[report.nodeid] = text

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session):
        result = yield  # pytest's JUnit plugin writes the file in here
        if (self.suite or self.outputs) and self.path.is_file():
            self.amend()
        return result

    def amend(self) -> None:
        tree = ET.parse(self.path)
        root = tree.getroot()
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        for suite in suites[:1]:
            props = suite.find("properties")
            if props is None:
                props = ET.Element("properties")
                suite.insert(0, props)
            for name, value in self.suite:
                ET.SubElement(props, "property", name=name, value=xml_text(str(value)))
        wanted = {junit_case_key(nodeid, self.config.option.junitprefix): text for nodeid, text in self.outputs.items()}
        for case in root.iter("testcase"):
            text = wanted.get((case.get("classname", ""), case.get("name", "")))
            if text is None:
                continue
            out = case.find("system-out")
            if out is None:
                out = ET.SubElement(case, "system-out")
            out.text = (out.text or "") + xml_text(text)
        tree.write(self.path, encoding="utf-8", xml_declaration=True)


def register(config: pytest.Config) -> None:
    """Amend the JUnit file of this run, if it writes one (`--junitxml`) and this is not an xdist worker."""
    xmlpath = config.getoption("xmlpath", None)
    if xmlpath and not hasattr(config, "workerinput") and not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(JUnitAmendments(config, Path(xmlpath).absolute()), PLUGIN_NAME)


def suite_properties(config: pytest.Config, properties: Iterable[tuple[str, str]]) -> None:
    """Add `<testsuite>` properties that are known only at the end of the session."""
    amendments = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if amendments is not None:
        amendments.suite.extend(properties)
