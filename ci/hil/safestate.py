"""Safe state: every actuator a test touched is torque-disabled on every exit path.

Drivers register when opened; `make_safe` runs in each test's teardown (pass, failure, pytest-timeout's signal
method, Ctrl-C and SIGTERM all reach it) and `make_all_safe` again at session end and at interpreter exit.
A device that is rebooting or reconnecting gets retries with back-off before we give up and say so.
"""

from __future__ import annotations

import atexit
import threading
import time

_open: list = []
_lock = threading.Lock()


def register(driver) -> None:
    with _lock:
        if driver not in _open:
            _open.append(driver)


def make_safe(driver, timeout: float = 3.0) -> None:
    """Torque off through `driver`, reopening its port if needed; raises the last error after `timeout`.
    An abort (SIGTERM, Ctrl-C) arriving meanwhile waits for the torque-off instead of cutting it short."""
    from ci.hil.drivers.base import DeviceError
    from ci.pytest_interrupt import uninterrupted

    deadline = time.monotonic() + timeout
    delay = 0.05
    with uninterrupted():
        try:
            while True:
                try:
                    if not driver.is_open:
                        driver.open(timeout=max(0.1, deadline - time.monotonic()))
                    driver.safe()
                    return
                except DeviceError:
                    if time.monotonic() + delay > deadline:
                        raise
                    driver.close()
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
        finally:
            with _lock:
                if driver in _open:
                    _open.remove(driver)


def make_all_safe() -> list[str]:
    """Every registered actuator made safe; returns the failures (as messages) instead of raising."""
    from ci.hil.drivers.base import DeviceError

    with _lock:
        pending = list(_open)
    failures = []
    for driver in pending:
        try:
            make_safe(driver)
        except DeviceError as exc:
            failures.append(str(exc))
    return failures


atexit.register(make_all_safe)
