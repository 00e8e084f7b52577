"""Verdicts on a busy host: the host's own wake-up latency is measured during the session (a sampler process
sleeping a fixed period, as cyclictest does) and shown beside every timing verdict. On an emulated rig a timing
result the host's latency explains is inconclusive and the run stays green; a stalled or silent device still
fails; a real rig keeps strict budgets. A late host is simulated deterministically (HILCI_HOST_LATE_MS)."""

from __future__ import annotations

import os
import time

import dynamixel_sdk as dxl
import pytest

from ci.hil import hostclock
from ci.hil.hostclock import HostClock, HostLatency, Sampler, excess_ms, judge
from ci.measurements import FAIL, INCONCLUSIVE, PASS, distribution, measure, parse_properties

LATE = HostLatency(n=1000, p50_ms=4.0, p99_ms=18.0, max_ms=25.0)


def test_sampler_reports_a_window_and_the_session():
    s = Sampler(capacity=8)
    for i, late_us in enumerate([10, 20, 30, 4000, 50]):
        s.record(1_000 + i, late_us * 1000)
    w = HostLatency.from_dict(s.window(1_001, 1_003))
    assert (w.n, w.max_ms) == (3, 4.0)
    assert w.p50_ms == pytest.approx(0.03)
    whole = HostLatency.from_dict(s.session())
    assert whole.n == 5 and whole.max_ms == 4.0 and whole.p50_ms == pytest.approx(0.035, abs=0.01)
    for i in range(20):  # the ring keeps the latest samples; the session histogram keeps them all
        s.record(2_000 + i, 1000)
    assert HostLatency.from_dict(s.window(0, 1_999)) is None
    assert HostLatency.from_dict(s.session()).n == 25


def test_the_sampler_process_measures_and_a_late_host_can_be_simulated(tmp_path, monkeypatch):
    monkeypatch.setenv(hostclock.LATE_ENV, "30")
    clock = HostClock(tmp_path / "clock.sock").start()
    try:
        t0 = time.perf_counter_ns()
        time.sleep(0.3)
        window = clock.window(t0)
        assert window is not None and window.n >= 3
        assert window.p50_ms >= 30.0  # every wake-up at least the injected 30 ms late
        assert clock.session().n >= window.n
    finally:
        clock.stop()
    assert not (tmp_path / "clock.sock").exists()
    assert clock.window(0) is None  # gone: no figure rather than a hang


@pytest.mark.parametrize(("m", "expected"), [
    (distribution("servo.roundtrip", [0.1] * 98 + [30.0, 30.0], "ms", high=8.0), 22.0),
    (measure("imu.estop", 0.2, "s", high=0.05), 150.0),
    (measure("cam.rate", 29.0, "Hz", low=29.4), None),  # a rate without its window cannot be weighed
    (measure("imu.drops", 3, "", high=0), None),  # a count is never the host's fault
    (measure("servo.position_error", 40, "ticks", high=20), None),
])
def test_excess_in_host_milliseconds(m, expected):
    got = excess_ms(m)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_a_rate_shortfall_counts_as_the_time_the_stream_was_missing():
    m = measure("imu.rate", 190.0, "Hz", low=196.0)
    m.extra["window_s"] = "1.0"
    assert excess_ms(m) == pytest.approx(6 / 196 * 1000)


def test_judge_marks_what_the_host_explains_inconclusive_and_keeps_the_rest_failing():
    small = judge(distribution("servo.roundtrip", [0.1] * 98 + [20.0, 20.0], "ms", high=8.0), LATE)
    assert small.verdict == INCONCLUSIVE and not small.failed
    props = dict(small.properties())
    assert props["servo.roundtrip.verdict"] == "inconclusive"
    assert "25 ms worst wake-up" in props["servo.roundtrip.inconclusive"]
    assert "inconclusive" in small.message()
    stalled = judge(distribution("camera.jitter", [1.0] * 50 + [2000.0], "ms", high=15.0), LATE)
    assert stalled.verdict == FAIL  # a 2 s gap is a stall, not a busy computer
    count = judge(measure("imu.drops", 12, "", high=0), LATE)
    assert count.verdict == FAIL
    ok = judge(measure("servo.estop", 10, "ms", high=50), LATE)
    assert ok.verdict == PASS
    assert judge(measure("servo.estop", 60, "ms", high=50), None).verdict == FAIL  # no figure: strict
    assert parse_properties(small.properties())["servo.roundtrip"]["verdict"] == "inconclusive"


def test_servo_driver_retries_a_missing_status_packet_only_when_told(tmp_path):
    from ci.hil.drivers.servo import ServoDriver
    from ci.hil.rig import Device

    class Port:
        def clearPort(self):  # noqa: N802 - the SDK's spelling
            pass

    answers = []

    def flaky(_port, dxl_id, addr):
        answers.append(addr)
        return (0, dxl.COMM_RX_TIMEOUT, 0) if len(answers) == 1 else (1234, dxl.COMM_SUCCESS, 0)

    driver = ServoDriver(Device.__new__(Device), "/dev/null")
    driver.port_handler, driver.is_open = Port(), True
    assert driver._txrx(flaky, 1, 132)[1] == dxl.COMM_RX_TIMEOUT  # strict by default (real rigs)
    answers.clear()
    driver.timeout_retries = 2
    assert driver._txrx(flaky, 1, 132) == (1234, dxl.COMM_SUCCESS, 0) and driver.retries == 1
    silent = lambda *_: (0, dxl.COMM_RX_TIMEOUT, 0)  # noqa: E731
    assert driver._txrx(silent, 1, 132)[1] == dxl.COMM_RX_TIMEOUT and driver.retries == 3  # still fails


def test_no_leftover_sampler_process(tmp_path):
    clock = HostClock(tmp_path / "c.sock").start()
    pid = clock.proc.pid
    clock.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
