"""The typed-settings core: every bad value is one SettingsError naming the file and the dotted field."""

from __future__ import annotations

import pytest

from hilci.util.settings import (
    SettingsError,
    as_dict,
    build,
    flag,
    int_list,
    integer,
    mapping,
    nested,
    number,
    settings,
    str_list,
    text,
)


@settings
class Bench:
    warmup_s: float = number(0.2, ge=0, le=60)
    iterations: int = integer(200, ge=1, le=1_000_000)


@settings
class Section:
    rate_hz: float = number(200.0, gt=0, le=10_000)
    port: str = text()
    backend: str = text("auto", choices=("auto", "onnxruntime"))
    emulate: bool = flag(False)
    ids: list = int_list([1], ge=0, le=252, min_len=1)
    args: list = str_list([])
    extra: dict = mapping()
    bench: Bench = nested(Bench)


def test_defaults_and_values_are_read():
    s = build(Section, {"port": "/dev/ttyUSB0", "rate_hz": 100, "ids": [1, 2.0], "bench": {"iterations": 5}},
              file="rig.yaml", prefix="devices.imu.")
    assert s.rate_hz == 100 and s.ids == [1, 2] and s.bench.iterations == 5 and s.bench.warmup_s == 0.2
    assert s.backend == "auto" and s.extra == {} and as_dict(s)["bench"] == {"warmup_s": 0.2, "iterations": 5}


@pytest.mark.parametrize(("data", "message"), [
    ({"port": "p", "rate_hz": 0}, "rig.yaml: devices.imu.rate_hz: expected a number > 0 <= 10000, got 0"),
    ({"port": "p", "rate_hz": -5}, "devices.imu.rate_hz: expected a number > 0"),
    ({"port": "p", "rate_hz": float("inf")}, "devices.imu.rate_hz: expected a number"),
    ({"port": "p", "rate_hz": float("nan")}, "devices.imu.rate_hz: expected a number"),
    ({"port": "p", "rate_hz": True}, "devices.imu.rate_hz: expected a number"),
    ({"port": "p", "rate_hz": "fast"}, "got 'fast'"),
    ({"port": "p", "ids": [300]}, "devices.imu.ids[0]: expected a whole number >= 0 <= 252, got 300"),
    ({"port": "p", "ids": []}, "devices.imu.ids: expected a list of whole numbers (at least 1)"),
    ({"port": "p", "ids": [1.5]}, "devices.imu.ids[0]: expected a whole number"),
    ({"port": ""}, "devices.imu.port: expected a non-empty string"),
    ({}, "devices.imu.port: required"),
    ({"port": "p", "backend": "tensorrtt"}, "devices.imu.backend: 'tensorrtt' is not one of auto, onnxruntime"),
    ({"port": "p", "emulate": "yes"}, "devices.imu.emulate: expected true or false"),
    ({"port": "p", "args": "-x"}, "devices.imu.args: expected a list of strings"),
    ({"port": "p", "rate_hzz": 5}, "devices.imu.rate_hzz: unknown setting (did you mean 'rate_hz'?)"),
    ({"port": "p", "zzz": 5}, "devices.imu.zzz: unknown setting (valid: rate_hz, port,"),
    ({"port": "p", "bench": {"warmup_s": None}}, "devices.imu.bench.warmup_s: expected a number >= 0 <= 60, got None"),
    ({"port": "p", "bench": [1, 2]}, "rig.yaml: devices.imu.bench: expected a mapping of settings, got [1, 2]"),
    ([1, 2], "rig.yaml: devices.imu: expected a mapping of settings"),
])
def test_bad_values_name_file_and_field(data, message):
    with pytest.raises(SettingsError) as err:
        build(Section, data, file="rig.yaml", prefix="devices.imu.")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_top_level_errors_have_no_dangling_prefix():
    with pytest.raises(SettingsError, match=r"^hilci.yaml: expected a mapping of settings, got 'x'$"):
        build(Bench, "x", file="hilci.yaml")
    with pytest.raises(SettingsError, match=r"^hilci.yaml: iterationz: unknown setting \(did you mean 'iterations'\?\)$"):
        build(Bench, {"iterationz": 3}, file="hilci.yaml")


def test_instances_are_frozen_and_defaults_not_shared():
    a = build(Section, {"port": "p"}, file="f")
    b = build(Section, {"port": "p"}, file="f")
    a.ids.append(7)
    assert b.ids == [1]
    with pytest.raises(AttributeError):
        a.rate_hz = 3  # type: ignore[misc]
