"""What a stage's testcases say in a few words: failures grouped by cause, counts, headline figures.

Shared by the terminal summary (`hilci run`) and the HTML report, so both name the same causes and figures.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hilci.pipeline.model import Status
from hilci.results.junit import CaseRecord
from hilci.results.view import INCONCLUSIVE, headline, is_failed, verdict_counts

FAILED_STATUSES = (Status.FAILED, Status.ERROR)


def stage_of(case: CaseRecord) -> str:
    """The stage a testcase belongs to: classname hilci.<stage>[...], else the suite name."""
    for source in (case.classname, case.suite):
        if source.startswith("hilci."):
            return source.split(".")[1]
    return case.suite.split(".")[0] or "tests"


def cause_of(case: CaseRecord) -> str:
    """The first line of what went wrong: the message, else the first line of the details."""
    for text in (case.message, case.text):
        line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")
        if line:
            return line
    return f"{case.status} without a message"


@dataclass
class FailureGroup:
    """Testcases of one stage that failed for the same cause (one 'port missing', not fifteen rows)."""

    stage: str
    cause: str
    cases: list[CaseRecord] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        """Whether a measurement failed its limits here (a gate), rather than the test breaking."""
        return any(is_failed(f) for c in self.cases for f in c.measurements.values())

    @property
    def status(self) -> str:
        return Status.ERROR if any(c.status == Status.ERROR for c in self.cases) else Status.FAILED


def group_failures(cases: Iterable[CaseRecord]) -> list[FailureGroup]:
    """Failed and errored testcases grouped by (stage, cause): failed measurements first, then the biggest."""
    groups: dict[tuple[str, str], FailureGroup] = {}
    for case in cases:
        if case.status in FAILED_STATUSES:
            key = (stage_of(case), cause_of(case))
            groups.setdefault(key, FailureGroup(*key)).cases.append(case)
    ordered = list(groups.values())
    return sorted(ordered, key=lambda g: (not g.measured, -len(g.cases)))  # sorted() is stable


def failure_detail(cases: list[CaseRecord], named: int = 3) -> str:
    """'3 of 40 tests failed: imu at P did not answer (2 tests: a, b); c: rate 188 Hz below 196 Hz'."""
    groups = group_failures(cases)
    failed = sum(len(g.cases) for g in groups)
    if not failed:
        return ""
    parts = []
    for group in groups[:named]:
        if len(group.cases) == 1:
            parts.append(f"{group.cases[0].name}: {group.cause}")
        else:
            names = ", ".join(c.name for c in group.cases[:2]) + (", …" if len(group.cases) > 2 else "")
            parts.append(f"{group.cause} ({len(group.cases)} tests: {names})")
    more = len(groups) - named
    tail = f"; and {more} more cause{'s' if more != 1 else ''}" if more > 0 else ""
    return f"{failed} of {len(cases)} tests failed: " + "; ".join(parts) + tail


def stage_detail(cases: list[CaseRecord]) -> str:
    """A stage in one line: its failures, else its headline figures; inconclusive verdicts counted either way."""
    detail = failure_detail(cases)
    if not detail:
        ran = [c for c in cases if c.status != Status.SKIPPED]
        measured = {name: fields for c in cases for name, fields in c.measurements.items()}
        detail = headline(measured, len(ran))
    inconclusive = verdict_counts([f for c in cases for f in c.measurements.values()]).get(INCONCLUSIVE, 0)
    if inconclusive:
        detail += f" · {inconclusive} inconclusive"
    return detail


def suite_properties(path: Path) -> dict[str, dict[str, str]]:
    """{suite name: {property: value}} of a JUnit file: the stage, board, rig, platform and cache facts."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return {}
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return {s.get("name", ""): {p.get("name", ""): p.get("value", "") for p in s.findall("properties/property")}
            for s in suites}


def produced_duration(properties: dict[str, str], cases: list[CaseRecord]) -> float | None:
    """How long a cached stage took in the run that produced it: `hilci.cached.duration_s` when the cache
    recorded it, else the time its testcases took then; None for a stage that is not cached (or unknown)."""
    if properties.get("hilci.cached") != "true":
        return None
    try:
        return float(properties["hilci.cached.duration_s"])
    except (KeyError, ValueError):
        return sum(c.time for c in cases) or None  # 0: its testcases were not timed, so unknown
