"""What the plugin adds to the JUnit file pytest writes: suite properties known only at the end of the session
(the host's wake-up latency) and a failing testcase's `system-out` (its device traffic).

pytest's `record_testsuite_property` is meant for fixtures; at session end the plugin reaches the same
`LogXML` through its stash key. Nothing here when the run writes no JUnit (no `--junitxml`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

import pytest
from _pytest.junitxml import bin_xml_escape, xml_key


def suite_properties(config: pytest.Config, properties: Iterable[tuple[str, str]]) -> None:
    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    for name, value in properties:
        xml.add_global_property(name, value)


class DeviceTrafficWriter:
    """Writes a report's `hil_traffic` (set by the plugin on a failing test) as its testcase's `<system-out>`;
    it runs where the JUnit file is written (the controller under xdist)."""

    def __init__(self, config: pytest.Config):
        self.config = config

    @pytest.hookimpl(trylast=True)  # after pytest's JUnit plugin has opened the testcase
    def pytest_runtest_logreport(self, report) -> None:
        text = getattr(report, "hil_traffic", None)
        xml = self.config.stash.get(xml_key, None)
        if not text or xml is None:
            return
        node = ET.Element("system-out")
        node.text = bin_xml_escape(text)
        xml.node_reporter(report).append(node)
