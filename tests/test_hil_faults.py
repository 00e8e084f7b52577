"""The fault matrix: each fault an emulator injects is caught by the right HIL test with a message naming the
device and the fault, inside the test's timeout; after a disconnect or reboot the next test reconnects and passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hilci.results.junit import read_cases

ROOT = Path(__file__).resolve().parents[1]

# Each case runs the suites against four emulators (7-10 s): `make test` runs them, the build stage does not.
pytestmark = [pytest.mark.slow, pytest.mark.emulator]

BASE_DEVICES = {
    "imu": {"driver": "imu", "baud": 921600, "rate_hz": 200, "jitter_p99_ms": 15.0, "window_s": 0.6},
    "gnss": {"driver": "gnss", "baud": 115200, "rate_hz": 10, "window_s": 1.0, "jitter_p99_ms": 30.0},
    "camera": {"driver": "camera", "baud": 4000000, "rate_hz": 30, "window_s": 0.6, "jitter_p99_ms": 20.0},
    "servo": {"driver": "servo", "baud": 1000000, "ids": [1], "roundtrip_samples": 50, "roundtrip_p99_ms": 8.0},
}


def write_rig(tmp_path: Path, name: str, faults: dict[str, list], devices=("imu", "gnss", "camera", "servo")) -> Path:
    devs = {}
    for dev in devices:
        devs[dev] = dict(BASE_DEVICES[dev])
        if faults.get(dev):
            devs[dev]["faults"] = faults[dev]
    rig = {"name": name, "emulate": True, "health_timeout_s": 1.0, "devices": devs}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(rig))
    return path


def run_hil(tmp_path: Path, rig: Path, *args: str, timeout: float = 90) -> tuple[int, dict, str]:
    junit = tmp_path / f"{rig.stem}.xml"
    cmd = [sys.executable, "-m", "pytest", "hil_tests", "--rig", str(rig), f"--junitxml={junit}", "-q",
           "-p", "no:cacheprovider", "-o", "junit_family=xunit2", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    cases = {f"{c.classname.rsplit('.', 1)[-1]}::{c.name}": c for c in read_cases(junit)} if junit.exists() else {}
    return proc.returncode, cases, proc.stdout + proc.stderr


def expect(cases: dict, test: str, status: str, *fragments: str) -> None:
    case = cases.get(test)
    assert case is not None, f"{test} not run; ran {sorted(cases)}"
    assert case.status == status, f"{test}: {case.status} ({case.message})"
    for fragment in fragments:
        assert fragment in case.message, f"{test}: {fragment!r} not in {case.message!r}"


def test_persistent_faults_from_the_rig(tmp_path):
    rig = write_rig(tmp_path, "faulty", {
        "imu": [{"kind": "rate_drop", "rate_hz": 150}],
        "gnss": [{"kind": "corrupt", "fraction": 0.5}],
        "camera": [{"kind": "garbage", "fraction": 0.5}],
        "servo": [{"kind": "hw_error", "code": 32}],
    })
    code, cases, out = run_hil(tmp_path, rig, "-k", "test_rate or test_data_valid or test_hardware_error")
    assert code == 1, out
    expect(cases, "TestImu::test_rate[imu]", "failed", "imu rate ", "Hz below limit 196 Hz (200 Hz ±2%)")
    expect(cases, "TestGnss::test_data_valid[gnss]", "failed", "gnss at ", "with a bad checksum")
    expect(cases, "TestCamera::test_data_valid[camera]", "failed", "camera at ", "bytes of garbage")
    expect(cases, "TestServo::test_hardware_error_clear[servo]", "failed", "servo at ", "0x20 (overload)")
    expect(cases, "TestGnss::test_rate[gnss]", "passed")  # a corrupt sentence does not slow the receiver
    rate = cases["TestImu::test_rate[imu]"].measurements["imu.rate"]
    assert rate["verdict"] == "fail" and 145 < float(rate["value"]) < 155


def test_corruption_and_garbage(tmp_path):
    rig = write_rig(tmp_path, "noisy", {
        "imu": [{"kind": "corrupt", "fraction": 0.3}],
        "gnss": [{"kind": "garbage", "fraction": 0.5}],
        "camera": [{"kind": "corrupt", "fraction": 0.3}],
        "servo": [{"kind": "rate_drop", "delay_ms": 10}],
    })
    code, cases, out = run_hil(tmp_path, rig, "-k", "test_data_valid or test_roundtrip or test_no_drops")
    assert code == 1, out
    expect(cases, "TestImu::test_data_valid[imu]", "failed", "imu at ", "bad CRC")
    expect(cases, "TestImu::test_no_drops[imu]", "failed", "imu drops")  # a bad packet is a lost packet
    expect(cases, "TestGnss::test_data_valid[gnss]", "failed", "gnss at ", "garbage lines")
    expect(cases, "TestCamera::test_data_valid[camera]", "failed", "camera at ", "bad CRC-32")
    expect(cases, "TestServo::test_roundtrip[servo]", "failed", "servo roundtrip", "above limit 8 ms")


def test_per_test_disconnect_stall_reboot_then_recovery(tmp_path):
    rig = write_rig(tmp_path, "flaky", {})
    code, cases, out = run_hil(
        tmp_path, rig,
        "--hil-fault", "imu:disconnect:duration_s=0.5@TestImu::test_rate",
        "--hil-fault", "gnss:stall:duration_s=0.7@TestGnss::test_rate",
        "--hil-fault", "camera:reboot:after_s=0.2,duration_s=0.1@TestCamera::test_data_valid",
        "--hil-fault", "servo:reboot:after_s=0.05,duration_s=0.5@test_reaches_positions",
        "-k", "test_rate or test_jitter or test_data_valid or test_reaches or test_roundtrip")
    assert code == 1, out
    expect(cases, "TestImu::test_rate[imu]", "failed", "imu at ", "disconnected")
    expect(cases, "TestImu::test_jitter[imu]", "passed")  # reconnected after the outage
    expect(cases, "TestGnss::test_rate[gnss]", "failed", "gnss at ", "stalled")
    expect(cases, "TestGnss::test_jitter[gnss]", "passed")
    expect(cases, "TestCamera::test_data_valid[camera]", "failed", "camera at ", "rebooted")
    expect(cases, "TestServo::test_reaches_positions[servo]", "failed", "servo at ", "rebooted mid-test")
    expect(cases, "TestServo::test_roundtrip[servo]", "passed")


def test_a_servo_answering_after_the_packet_timeout_fails_only_its_own_test(tmp_path):
    """40 ms late answers, beyond the SDK's 34 ms packet timeout: the late answers are drained, never taken for
    the answers to later requests (which, read as a 4-byte position, crashed test_estop with an IndexError)."""
    rig = write_rig(tmp_path, "late", {}, devices=("servo",))
    code, cases, out = run_hil(tmp_path, rig, "--hil-fault", "servo:rate_drop:delay_ms=40@test_roundtrip",
                               "-m", "actuator")
    assert code == 1, out
    expect(cases, "TestServo::test_roundtrip[servo]", "failed", "servo at ", "after the packet timeout")
    for test in ("test_answers", "test_hardware_error_clear", "test_reaches_positions", "test_estop"):
        expect(cases, f"TestServo::{test}[servo]", "passed")


def test_silent_device_fails_only_its_own_tests(tmp_path):
    rig = write_rig(tmp_path, "mute", {"gnss": [{"kind": "stall"}], "imu": [], "servo": []},
                    devices=("imu", "gnss", "servo"))
    code, cases, out = run_hil(
        tmp_path, rig, "--hil-fault", "servo:garbage:fraction=1@test_answers",
        "--hil-fault", "servo:corrupt:fraction=1@test_hardware_error_clear",
        "--hil-fault", "imu:reboot:after_s=0.2,duration_s=0.2@TestImu::test_data_valid",
        "-k", "test_present or test_answers or test_hardware_error or TestImu")
    assert code == 1, out
    expect(cases, "TestGnss::test_present[gnss]", "failed", "did not answer within 1 s")
    assert "/gnss did not answer" in cases["TestGnss::test_present[gnss]"].message  # names the port
    expect(cases, "TestImu::test_present[imu]", "passed")
    expect(cases, "TestImu::test_data_valid[imu]", "failed", "imu at ", "went backwards", "rebooted")
    expect(cases, "TestServo::test_answers[servo]", "failed", "servo at ", "corrupt reply")
    expect(cases, "TestServo::test_hardware_error_clear[servo]", "failed", "servo at ", "corrupt reply")


# The fault matrix: one fault kind per run, injected into ONE test of every device at once (devices are
# independent). Each faulted test must fail naming the fault; every other test of that device must pass.
# (device, fault spec, faulted test, what its message must say)
MATRIX = {
    "disconnect": [("imu", "disconnect", "TestImu::test_rate", "disconnected"),
                   ("gnss", "disconnect", "TestGnss::test_rate", "disconnected"),
                   ("camera", "disconnect", "TestCamera::test_rate", "disconnected"),
                   ("servo", "disconnect", "test_answers", "disconnected")],
    "stall": [("imu", "stall", "TestImu::test_rate", "stalled"),
              ("gnss", "stall", "TestGnss::test_rate", "stalled"),
              ("camera", "stall", "TestCamera::test_rate", "stalled"),
              ("servo", "stall", "test_answers", "no answer")],
    "corrupt": [("imu", "corrupt:fraction=0.5", "TestImu::test_data_valid", "bad CRC"),
                ("gnss", "corrupt:fraction=0.5", "TestGnss::test_data_valid", "bad checksum"),
                ("camera", "corrupt:fraction=0.5", "TestCamera::test_data_valid", "bad CRC-32"),
                ("servo", "corrupt:fraction=1", "test_answers", "corrupt reply")],
    "garbage": [("imu", "garbage:fraction=0.5", "TestImu::test_data_valid", "not MAVLink"),
                ("gnss", "garbage:fraction=0.5", "TestGnss::test_data_valid", "garbage lines"),
                ("camera", "garbage:fraction=0.5", "TestCamera::test_data_valid", "bytes of garbage"),
                ("servo", "garbage:fraction=1", "test_answers", "corrupt reply")],
    "rate_drop": [("imu", "rate_drop:rate_hz=150", "TestImu::test_rate", "below limit"),
                  ("gnss", "rate_drop:rate_hz=5", "TestGnss::test_rate", "below limit"),
                  ("camera", "rate_drop:rate_hz=15", "TestCamera::test_rate", "below limit"),
                  ("servo", "rate_drop:delay_ms=25", "test_roundtrip", "above limit 20 ms")],
    "reboot": [("imu", "reboot:after_s=0.2", "TestImu::test_rate", "rebooted"),
               ("gnss", "reboot:after_s=0.2", "TestGnss::test_rate", "rebooted"),
               ("camera", "reboot:after_s=0.2", "TestCamera::test_rate", "rebooted"),
               ("servo", "reboot:after_s=0.05", "test_reaches_positions", "rebooted mid-test")],
    "hw_error": [("imu", "hw_error", "TestImu::test_data_valid", "SYS_STATUS reports unhealthy sensors"),
                 ("gnss", "hw_error", "TestGnss::test_data_valid", "fix quality 0 below limit 1"),
                 ("servo", "hw_error", "test_answers", "hardware alert")],
}
ORDER = {"imu": ("TestImu", ("test_present", "test_rate", "test_jitter", "test_data_valid", "test_no_drops")),
         "gnss": ("TestGnss", ("test_present", "test_rate", "test_jitter", "test_data_valid", "test_no_drops")),
         "camera": ("TestCamera", ("test_present", "test_rate", "test_jitter", "test_data_valid", "test_no_drops")),
         "servo": ("TestServo", ("test_answers", "test_hardware_error_clear", "test_reaches_positions",
                                 "test_roundtrip", "test_estop"))}


@pytest.mark.parametrize("kind", sorted(MATRIX))
def test_a_fault_fails_its_own_test_and_the_later_ones_recover(tmp_path, kind):
    rows = MATRIX[kind]
    rig = write_rig(tmp_path, kind, {}, devices=tuple(device for device, *_ in rows))
    data = yaml.safe_load(rig.read_text())
    if "servo" in data["devices"]:  # about faults, not a busy host's timing: a round trip budget load cannot break
        data["devices"]["servo"]["roundtrip_p99_ms"] = 20.0
    rig.write_text(yaml.safe_dump(data))
    args = [a for device, spec, test, _ in rows for a in ("--hil-fault", f"{device}:{spec}@{test}")]
    code, cases, out = run_hil(tmp_path, rig, *args, "-m", "sensor or actuator", timeout=240)
    for device, _, test, fragment in rows:
        cls, order = ORDER[device]
        faulted = test.rpartition("::")[2]
        expect(cases, f"{cls}::{faulted}[{device}]", "failed", f"{device} ", fragment)  # names device and fault
        for other in order:  # before and after it: the fault is this test's alone
            if other != faulted:
                expect(cases, f"{cls}::{other}[{device}]", "passed")
