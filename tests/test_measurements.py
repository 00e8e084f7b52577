"""Measurements: statistics, verdicts, messages and the one JUnit property spelling."""

from __future__ import annotations

import pytest

from hilci.results.measurements import (
    Stats,
    distribution,
    measure,
    parse_properties,
    percentile,
    within_percent,
)


def test_statistics_of_a_known_sample():
    st = Stats.of([5, 1, 4, 2, 3, 6, 7, 8, 9, 10])
    assert (st.n, st.min, st.max, st.mean) == (10, 1.0, 10.0, 5.5)
    assert st.p50 == pytest.approx(5.5)
    assert st.p90 == pytest.approx(9.1)
    assert st.p99 == pytest.approx(9.91)
    assert st.jitter == pytest.approx(2.8722813)


def test_percentile_matches_linear_interpolation_and_refuses_no_samples():
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        Stats.of([])


def test_a_rate_below_its_floor_reads_like_a_person_wrote_it():
    low, high = within_percent(200.0, 2.0)
    m = measure("imu.rate", 188.2, "Hz", low=low, high=high, nominal="200 Hz -2%")
    assert not m.passed and m.verdict == "fail"
    assert m.message() == "imu rate 188.2 Hz below limit 196 Hz (200 Hz -2%)"
    assert measure("imu.rate", 199.8, "Hz", low=low).message() == "imu rate 199.8 Hz within >= 196 Hz"


def test_properties_are_one_per_field_and_parse_back():
    m = distribution("loop.latency", [1.0, 2.0, 3.0, 4.0], "ms", high=3.5)
    props = m.properties()
    names = [k for k, _ in props]
    assert names[:3] == ["loop.latency.value", "loop.latency.unit", "loop.latency.high"]
    assert {"loop.latency.n", "loop.latency.p50", "loop.latency.p99", "loop.latency.max",
            "loop.latency.jitter", "loop.latency.verdict"} <= set(names)
    parsed = parse_properties(props + [("unrelated", "x")])
    assert list(parsed) == ["loop.latency"]
    assert parsed["loop.latency"]["verdict"] == "fail"  # p99 3.97 ms > 3.5 ms
    assert parsed["loop.latency"]["n"] == "4"


def test_nan_never_passes():
    assert not measure("x", float("nan")).passed


def test_rates_and_intervals_from_arrival_times():
    from hilci.results.measurements import intervals_ms, rate_hz

    stamps = [0, 5_000_000, 10_000_000, 16_000_000]  # ns
    assert intervals_ms(stamps) == [5.0, 5.0, 6.0]
    assert rate_hz(stamps) == pytest.approx(3 / 0.016)
    assert rate_hz(stamps[:1]) == 0.0 and rate_hz([7, 7]) == 0.0
