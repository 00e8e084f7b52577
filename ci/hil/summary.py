"""pytest plugin: a short measurement table at the end of a session, and the session's progress for `hilci run`.

The table lists every measurement the tests recorded (`gate(...)`, in `user_properties`): failed ones first,
with the statistic behind the value (p99), the limits and the verdict; a session that measured nothing prints
nothing. Under `hilci run` the controller process also writes tests done of total to the progress file
(`hilci.stage.progress`), so the runner's live line shows how far the `hil` stage is.
"""

from __future__ import annotations

import os

import pytest

from hilci.results.measurements import parse_properties
from hilci.results.view import is_failed, limits_text, value_text, verdict, verdict_counts
from hilci.stage.progress import PROGRESS_ENV, report_progress

MAX_ROWS = 40  # "short": every failed measurement, then the others up to this many rows
PLUGIN_NAME = "hilci-measurement-summary"


class SessionMeasurements:
    """What this session measured and how far it is; lives in the controller (never in an xdist worker)."""

    def __init__(self) -> None:
        # taken out of the environment: pytest runs that this session's tests start report nothing
        self.target = os.environ.pop(PROGRESS_ENV, None)
        self.total = 0
        self.done = 0
        self.failed: set[str] = set()
        self.properties: dict[str, list[tuple[str, str]]] = {}  # nodeid -> its user_properties, in run order

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if session.items:
            self.total = len(session.items)
            report_progress(self.done, self.total, "tests", target=self.target)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        self.total = max(self.total, len(ids))  # the controller collects nothing itself under xdist
        report_progress(self.done, self.total, "tests", target=self.target)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.failed.add(report.nodeid)
        if report.user_properties:
            self.properties[report.nodeid] = list(report.user_properties)
        if report.when == "teardown":
            self.done += 1
            report_progress(self.done, self.total, "tests", len(self.failed), self.target)

    def rows(self) -> list[tuple[str, str, dict[str, str]]]:
        """(test, measurement, fields) for every measurement, failed ones first."""
        rows = [(nodeid.split("::")[-1], name, fields) for nodeid, props in self.properties.items()
                for name, fields in parse_properties(props).items()]
        return sorted(rows, key=lambda r: not is_failed(r[2]))

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config: pytest.Config) -> None:
        rows = self.rows()
        if rows:
            width = config.get_terminal_writer().fullwidth
            terminalreporter.write_sep("=", "measurements")
            for line in measurement_table(rows, width):
                terminalreporter.write_line(line)


def measurement_table(rows: list[tuple[str, str, dict[str, str]]], width: int = 100) -> list[str]:
    """Aligned lines: test, measurement, value (with its statistic), limits, verdict; on a narrow terminal the
    test column goes first (the measurement's name says the device), then long names are cut."""
    failed = sum(is_failed(f) for _, _, f in rows)
    shown = rows[:max(MAX_ROWS, failed)]
    table = [("test", "measurement", "value", "limits", "verdict")]
    table += [(test, name, value_text(f), limits_text(f), verdict(f)) for test, name, f in shown]
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    columns = [0, 1, 2, 3, 4]
    if sum(widths) + 2 * 4 > width:
        columns.remove(0)
    spare = width - sum(widths[i] for i in columns) - 2 * (len(columns) - 1)
    if spare < 0:
        widths[1] = max(widths[1] + spare, 16)
    lines = ["  ".join(_fit(row[i], widths[i]) for i in columns).rstrip() for row in table]
    counts = verdict_counts([f for _, _, f in rows])
    tally = ", ".join(f"{n} {word}" for word, n in sorted(counts.items()))
    more = f"; {len(rows) - len(shown)} more in the JUnit file" if len(rows) > len(shown) else ""
    lines.append(f"{len(rows)} measurements: {tally}{more}")
    return lines


def _fit(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[:width - 1] + "…"


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(SessionMeasurements(), PLUGIN_NAME)
