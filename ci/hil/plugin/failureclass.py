"""Every HIL test that did not simply pass, classed: our code or a model gate (`failure`), the device or rig
(`infrastructure`), or the host (`host`, a verdict it made inconclusive), so a red build says whose it is.

A failure is the rig's only when its own message is one the rig produced: an error in which a driver saw its
device drop out (`Driver.gone`/`rebooted`: port gone, silent, rebooted) or what the session saw (a device
unhealthy at start, a lock that timed out, a device that would not open or come back; `session.DROPPED`). A
device that dropped out and came back does not excuse a later, different failure of the same test: that stays
a code `failure`. The class goes into the testcase's `hil.failure_class` property, and an infrastructure
failure is written as `<error type="infrastructure">` (Jenkins shows it as an error, not a test failure).
"""

from __future__ import annotations

import pytest

from hilci.hil.plugin.session import DROPPED, OPEN_DRIVERS
from hilci.results.junit import CODE_FAILURE, FAILURE_CLASS_PROPERTY, HOST, INFRASTRUCTURE
from hilci.results.measurements import INCONCLUSIVE

CLASSED = pytest.StashKey[str]()


def dropouts(item: pytest.Item) -> list[str]:
    """The messages in which the rig failed this test so far."""
    drivers = item.stash.get(OPEN_DRIVERS, [])
    return [*item.stash.get(DROPPED, []), *(m for d in drivers for m in getattr(d, "dropouts", []))]


def classify(text: str, dropped: list[str]) -> str:
    return INFRASTRUCTURE if any(m and m in text for m in dropped) else CODE_FAILURE


def note(item: pytest.Item, report: pytest.TestReport) -> str:
    """Class a test's report (once per test: the first failing phase decides); its class, '' when none."""
    if CLASSED in item.stash:
        return ""
    if report.failed:
        found = classify(str(report.longrepr or ""), dropouts(item))
    elif report.when == "call" and report.passed and any(
            k.endswith(".verdict") and v == INCONCLUSIVE for k, v in item.user_properties):
        found = HOST
    else:
        return ""
    item.stash[CLASSED] = found
    item.user_properties.append((FAILURE_CLASS_PROPERTY, found))
    report.user_properties.append((FAILURE_CLASS_PROPERTY, found))
    report.hil_failure_class = found
    return found
