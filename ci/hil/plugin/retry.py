"""Retries for infrastructure only: a HIL test that failed because its device dropped out (`failureclass`) is
run again, once by default (`--hil-retries`), after the device is brought back (a power cycle where the rig
declares a switch, else a reconnect; `recovery`). A code failure is never retried, so a retry cannot hide one.

Only the last attempt is reported; it carries `hil.retried` (what the first attempt failed with and how the
device came back), so the JUnit, the report and the history show every retry. A device that does not come back
leaves the first attempt's failure as it was, with why in `hil.retried`.
"""

from __future__ import annotations

import pytest

# pytest has no public way to run a test's phases without reporting them (only the last attempt is reported): the
# one private name hilci uses, listed in tests/test_imports.py (PRIVATE_PYTEST); pytest-rerunfailures uses it too.
from _pytest.runner import runtestprotocol

from hilci.hil.plugin import failureclass
from hilci.hil.plugin.session import DROPPED, FAULTED, OPEN_DRIVERS, UNHEALTHY, USED, HilSession
from hilci.results.junit import INFRASTRUCTURE, RETRIED_PROPERTY

ATTEMPT_KEYS = (failureclass.CLASSED, DROPPED, FAULTED, OPEN_DRIVERS, UNHEALTHY, USED)


def infrastructure_failure(reports: list) -> pytest.TestReport | None:
    return next((r for r in reports if r.failed and getattr(r, "hil_failure_class", "") == INFRASTRUCTURE), None)


def first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr or "")
    return (text.strip().splitlines() or ["failed"])[-1]


def run(item: pytest.Item, nextitem: pytest.Item | None, hil: HilSession, retries: int) -> bool:
    """pytest's run-test protocol for one HIL test, with its infrastructure retries."""
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    declared = list(item.user_properties)
    reports = runtestprotocol(item, nextitem=nextitem, log=False)
    for _ in range(retries):
        failed = infrastructure_failure(reports)
        if failed is None:
            break
        devices = list({d.label: d for d in item.stash.get(USED, [])}.values())  # each once, in order
        first = first_line(failed)
        outcomes = [(d, *hil.recover(d)) for d in devices]
        back = all(not problem for _, _, problem in outcomes)
        how = ", ".join(f"{d.name} {verb}" + (f" but {problem}" if problem else "") for d, verb, problem in outcomes)
        if not back:
            item.user_properties.append((RETRIED_PROPERTY, f"not retried: {how} (after: {first})"))
            for r in reports:  # the reports are pytest's to log: the teardown one carries the properties
                r.user_properties = list(item.user_properties)
            break
        for key in ATTEMPT_KEYS:
            if key in item.stash:
                del item.stash[key]
        item.user_properties[:] = [*declared, (RETRIED_PROPERTY, f"{first}; {how}, then run again")]
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
