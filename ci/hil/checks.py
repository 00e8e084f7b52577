"""Measurements the suites gate on, computed from a driver's capture: rate, jitter, drops, data validity.

Each returns `hilci.results.measurements.Measurement`s named `<device>.<what>`, so a failure reads
"imu rate 188.2 Hz below limit 196 Hz (200 Hz ±2%)" and the JUnit properties are `imu.rate.value` etc.
"""

from __future__ import annotations

from hilci.hil.rig import Device
from hilci.results.measurements import (
    Measurement,
    distribution,
    intervals_ms,
    measure,
    rate_hz,
    within_percent,
)


def _fmt(x: float) -> str:
    return f"{x:g}"


def rate(device: Device, arrivals_ns: list[int]) -> Measurement:
    """Messages per second over the window, against the rig's nominal rate ± tolerance. The window is kept
    (`window_s`), so a shortfall can be weighed against the host's own latency over the same time."""
    low, high = within_percent(device.settings.rate_hz, device.settings.rate_tolerance_pct)
    m = measure(f"{device.name}.rate", rate_hz(arrivals_ns), "Hz", low=low, high=high,
                nominal=f"{_fmt(device.settings.rate_hz)} Hz ±{_fmt(device.settings.rate_tolerance_pct)}%")
    if len(arrivals_ns) > 1:
        m.extra["window_s"] = _fmt(round((arrivals_ns[-1] - arrivals_ns[0]) / 1e9, 4))
    return m


def jitter(device: Device, arrivals_ns: list[int]) -> Measurement:
    """|inter-arrival - period| in ms, judged on its p99."""
    period = 1000.0 / device.settings.rate_hz
    deviations = [abs(i - period) for i in intervals_ms(arrivals_ns)] or [float("nan")]
    return distribution(f"{device.name}.jitter", deviations, "ms", gate="p99", high=device.settings.jitter_p99_ms,
                        nominal=f"period {period:.4g} ms")


def count(device: Device, what: str, value: int, high: float = 0, unit: str = "") -> Measurement:
    return measure(f"{device.name}.{what}", value, unit, high=high)


def gaps(device: Device, arrivals_ns: list[int]) -> int:
    """Epochs missing from a stream without sequence numbers (NMEA): intervals over 1.5 periods."""
    period = 1000.0 / device.settings.rate_hz
    return sum(max(0, round(i / period) - 1) for i in intervals_ms(arrivals_ns) if i > 1.5 * period)


def gap_drops(device: Device, arrivals_ns: list[int]) -> Measurement:
    """Drops of a stream without sequence numbers, inferred from its timing (`gaps`), against `max_drops`.

    A reader the host woke late sees a gap the device never made, so the longest silence beyond one period is
    kept (`silence_ms`): on an emulated rig a drop count the host's own worst delay explains is then
    inconclusive (`hilci.hil.hostclock.judge`), as a late rate or latency is."""
    m = count(device, "drops", gaps(device, arrivals_ns), high=device.settings.max_drops)
    period = 1000.0 / device.settings.rate_hz
    longest = max(intervals_ms(arrivals_ns), default=0.0)
    if m.value and longest > period:
        m.extra["silence_ms"] = _fmt(round(longest - period, 3))
    return m


def enough(arrivals_ns: list[int], device: Device, window_s: float) -> Measurement:
    """At least half the expected messages arrived (else rate and jitter mean nothing)."""
    expected = device.settings.rate_hz * window_s
    return measure(f"{device.name}.samples", len(arrivals_ns), "", low=max(2.0, expected / 2),
                   nominal=f"{_fmt(device.settings.rate_hz)} Hz for {_fmt(window_s)} s")


def present(device: Device, received: int, expected: int) -> Measurement:
    """The device said something: at least `expected` messages in the short presence window."""
    return measure(f"{device.name}.present", received, "messages", low=expected)


def around(device: Device, what: str, value: float, unit: str, nominal: float, tolerance: float) -> Measurement:
    """A value within nominal ± tolerance, e.g. gravity at rest 9.81 ± 0.3 m/s^2."""
    return measure(f"{device.name}.{what}", value, unit, low=nominal - tolerance, high=nominal + tolerance,
                   nominal=f"{_fmt(nominal)} ±{_fmt(tolerance)} {unit}".rstrip())
