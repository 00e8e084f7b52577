"""pytest plugin: an abort (SIGTERM from Jenkins, SIGINT from a terminal) ends a run cleanly, keeping its JUnit.

pytest dies on SIGTERM by default: fixtures are not torn down (an actuator stays torqued), temporary folders
stay, and the JUnit of the tests that already finished is never written. With this plugin the first SIGTERM or
SIGINT raises `Terminated` (a KeyboardInterrupt) in the main thread, so pytest unwinds, tears every fixture down
and writes its JUnit; the second signal is ignored, so another Ctrl-C or the parent's forwarded copy cannot cut
that teardown short (a third ends the process at once, for a teardown that hangs). The test that was running is logged as failed with "aborted by SIGTERM" and the
measurements it had recorded, so the JUnit says which test the abort interrupted.

`hilci stage` loads it into every pytest it starts (`-p hilci.stage.interrupt`); the HIL plugin loads it too.
Only the standard library and pytest: it runs on a Jetson.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

ABORTED = "aborted by"
NAME = "hilci-interrupt"
_critical = [0]  # depth of `uninterrupted()` sections in the main thread
_pending: list[str] = []  # a signal that arrived inside one, raised when the outermost ends


@contextmanager
def uninterrupted() -> Iterator[None]:
    """A section an abort waits for (an actuator's torque-off): the interrupt is raised when it ends."""
    _critical[0] += 1
    try:
        yield
    finally:
        _critical[0] -= 1
    if not _critical[0] and _pending:
        raise Terminated(_pending.pop())


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGINT) as an interrupt, so teardown and the safe state run as for Ctrl-C."""

    def __init__(self, signame: str):
        super().__init__(signame)
        self.signame = signame


class InterruptGuard:
    """Turns the first abort signal into `Terminated`, ignores the rest, and reports the interrupted test."""

    def __init__(self) -> None:
        self.signame = ""
        self.signals = 0
        self.item: pytest.Item | None = None
        self.item_start = 0.0
        self.item_reported = False
        self.on_abort: list[Callable[[], object]] = []  # run first thing after the interrupt (e.g. torque off)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame) -> None:
        self.signals += 1
        if self.signals >= 3:  # someone insists: the teardown hangs
            print(f"\naborted again by {signal.Signals(signum).name}: exiting without teardown", file=sys.stderr)
            os._exit(128 + signum)
        if self.signame:  # already unwinding: let the teardown finish
            return
        self.signame = signal.Signals(signum).name
        if _critical[0]:
            _pending.append(self.signame)
            return
        raise Terminated(self.signame)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem):
        self.item, self.item_start, self.item_reported = item, time.perf_counter(), False
        result = yield  # an interrupt propagates from here with self.item still naming the test
        self.item = None
        return result

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.failed or report.skipped:
            self.item_reported = True

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo) -> None:
        for action in self.on_abort:
            action()
        item = self.item
        if item is None or self.item_reported:
            return
        signame = self.signame or "SIGINT"
        keywords = {k: 1 for k in item.keywords}
        call = pytest.TestReport(item.nodeid, item.location, keywords, "failed",
                          f"{ABORTED} {signame}: the run was aborted while this test ran", "call",
                          duration=time.perf_counter() - self.item_start)
        # a teardown report closes the testcase: JUnit writes its recorded properties (measurements) then
        teardown = pytest.TestReport(item.nodeid, item.location, keywords, "passed", None, "teardown",
                              user_properties=list(item.user_properties))
        self.item_reported = True
        for report in (call, teardown):
            item.ihook.pytest_runtest_logreport(report=report)


def guard(config: pytest.Config) -> InterruptGuard:
    """This session's guard, registered and installed on first use."""
    found = config.pluginmanager.get_plugin(NAME)
    if found is None:
        found = InterruptGuard()
        config.pluginmanager.register(found, NAME)
        found.install()
    return found


def pytest_configure(config: pytest.Config) -> None:
    guard(config)
