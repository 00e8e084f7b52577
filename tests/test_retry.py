"""hilci.util.retry: one back-off loop for everything that tries again, with limits it cannot forget."""

from __future__ import annotations

import pytest

from hilci.util.retry import Backoff, retry


class Flaky:
    def __init__(self, failures: int, error: type[BaseException] = OSError):
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"try {self.calls}")
        return "ok"


def test_retries_with_growing_capped_delays():
    sleeps: list[float] = []
    call = Flaky(4)
    assert retry(call, on=(OSError,), attempts=5, backoff=Backoff(0.1, 0.3), sleep=sleeps.append) == "ok"
    assert call.calls == 5 and sleeps == pytest.approx([0.1, 0.2, 0.3, 0.3])


def test_gives_up_after_attempts_with_the_last_error():
    call = Flaky(10)
    with pytest.raises(OSError, match="try 3"):
        retry(call, on=(OSError,), attempts=3, sleep=lambda s: None)
    assert call.calls == 3


def test_gives_up_at_the_deadline():
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    call = Flaky(100)
    with pytest.raises(OSError):
        retry(call, on=(OSError,), timeout_s=1.0, backoff=Backoff(0.1, 0.4), sleep=sleep, clock=lambda: now[0])
    assert now[0] == pytest.approx(0.7) and call.calls == 4  # slept 0.1, 0.2, 0.4; one more 0.4 passes 1.0


def test_other_errors_and_give_up_are_not_retried():
    call = Flaky(1, ValueError)
    with pytest.raises(ValueError):
        retry(call, on=(OSError,), attempts=5, sleep=lambda s: None)
    assert call.calls == 1
    call = Flaky(3, PermissionError)
    with pytest.raises(PermissionError):
        retry(call, on=(OSError,), attempts=5, sleep=lambda s: None,
              give_up=lambda exc: isinstance(exc, PermissionError))
    assert call.calls == 1


def test_a_limit_is_required():
    with pytest.raises(ValueError, match="nothing may retry forever"):
        retry(lambda: None, on=(OSError,))
