"""Safe state: every actuator a test touched is torque-disabled on every exit path.

A `SafeState` belongs to one HIL session: drivers of actuators register when opened; `make_safe` runs in each
test's teardown (pass, failure, pytest-timeout's signal method, Ctrl-C and SIGTERM all reach it) and
`make_all_safe` again at session end and at interpreter exit. A device that is rebooting or reconnecting gets
retries with back-off before we give up and say so.
"""

from __future__ import annotations

import atexit
import threading
import time

from hilci.util.retry import Backoff, retry


def make_safe(driver, timeout: float = 3.0) -> None:
    """Torque off through `driver`, reopening its port if needed; raises the last error after `timeout`.
    An abort (SIGTERM, Ctrl-C) arriving meanwhile waits for the torque-off instead of cutting it short."""
    from hilci.hil.drivers.base import DeviceError
    from hilci.stage.interrupt import uninterrupted

    deadline = time.monotonic() + timeout

    def attempt() -> None:
        try:
            if not driver.is_open:
                driver.open(timeout=max(0.1, deadline - time.monotonic()))
            driver.safe()
        except DeviceError:
            driver.close()
            raise

    with uninterrupted():
        retry(attempt, on=(DeviceError,), timeout_s=timeout, backoff=Backoff(first_s=0.05, max_s=0.5))


class SafeState:
    """The actuator drivers a session has open, made safe when their test ends and again at every exit."""

    def __init__(self) -> None:
        self._open: list = []
        self._lock = threading.Lock()
        atexit.register(self.make_all_safe)

    def register(self, driver) -> None:
        with self._lock:
            if driver not in self._open:
                self._open.append(driver)

    def make_safe(self, driver, timeout: float = 3.0) -> None:
        try:
            make_safe(driver, timeout)
        finally:
            with self._lock:
                if driver in self._open:
                    self._open.remove(driver)

    def make_all_safe(self) -> list[str]:
        """Every registered actuator made safe; returns the failures (as messages) instead of raising."""
        from hilci.hil.drivers.base import DeviceError

        with self._lock:
            pending = list(self._open)
        failures = []
        for driver in pending:
            try:
                self.make_safe(driver)
            except DeviceError as exc:
                failures.append(str(exc))
        return failures

    def close(self) -> list[str]:
        """The session ends: everything safe, and no longer an atexit duty."""
        failures = self.make_all_safe()
        atexit.unregister(self.make_all_safe)
        return failures
