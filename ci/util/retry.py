"""One retry helper: call again with exponential back-off on the errors named, until attempts or time run out.

Used wherever hilci tries again (Jenkins requests; ports, locks and actuators that come back a little later
than one would like), so that back-off, limits and "give up on this error" are written once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Delays between tries: `first_s`, multiplied by `factor` each time, never above `max_s`."""

    first_s: float = 0.05
    max_s: float = 0.5
    factor: float = 2.0

    def next(self, delay: float) -> float:
        return min(delay * self.factor, self.max_s)


def retry(call: Callable[[], T], *, on: tuple[type[BaseException], ...], attempts: int | None = None,
          timeout_s: float | None = None, backoff: Backoff = Backoff(),
          give_up: Callable[[BaseException], bool] = lambda exc: False,
          sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> T:
    """`call()`'s result; on an error of the `on` kinds, sleep and call again, until `attempts` calls were made
    or the next try would start after `timeout_s`; then (or when `give_up(error)` says so) the last error is
    raised unchanged. Errors of other kinds are never retried. At least one limit must be given."""
    if attempts is None and timeout_s is None:
        raise ValueError("retry needs attempts or timeout_s: nothing may retry forever")
    deadline = None if timeout_s is None else clock() + timeout_s
    delay = backoff.first_s
    made = 0
    while True:
        made += 1
        try:
            return call()
        except on as exc:
            if give_up(exc) or (attempts is not None and made >= attempts) or \
                    (deadline is not None and clock() + delay > deadline):
                raise
        sleep(delay)
        delay = backoff.next(delay)
