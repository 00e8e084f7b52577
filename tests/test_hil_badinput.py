"""Bad input to the HIL framework: every rig field has a type and a range, fault specs are read in one place with
the same settings core, and each mistake is one line naming the file (or option) and the field, in
`pytest hil_tests --rig` (pytest's usage error, exit 4), `hilci stage hil` and `hilci emulate` (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hilci.hil.faults import FaultError, parse_fault
from hilci.hil.rig import RigError, load_rig
from tests.scratch import child_env

ROOT = Path(__file__).resolve().parents[1]
DEVICES = {
    "imu": {"driver": "imu", "baud": 921600},
    "gnss": {"driver": "gnss", "baud": 115200},
    "camera": {"driver": "camera", "baud": 4000000},
    "servo": {"driver": "servo", "baud": 1000000},
}


def rig_data(**changes) -> dict:
    """The sim-like rig with `a__b__c=value` changes (dotted through `__`)."""
    data = {"name": "bad", "emulate": True, "devices": yaml.safe_load(yaml.safe_dump(DEVICES))}
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return data


def write(tmp_path: Path, data: dict, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


BAD_RIGS = [
    (dict(devices__imu__rate_hz=0), "devices.imu.rate_hz: expected a number > 0"),
    (dict(devices__gnss__rate_hz=-5), "devices.gnss.rate_hz: expected a number > 0"),
    (dict(devices__camera__rate_hz=float("inf")), "devices.camera.rate_hz: expected a number > 0"),
    (dict(devices__imu__rate_hz=float("nan")), "devices.imu.rate_hz: expected a number > 0"),
    (dict(devices__imu__rate_hz=1e9), "devices.imu.rate_hz: expected a number > 0 <= "),
    (dict(devices__imu__baud=-5), "devices.imu.baud: expected a whole number > 0, got -5"),
    (dict(devices__imu__baud=12345), "devices.imu.baud: 12345 is not a standard baud rate (e.g. 9600, 57600, "),
    (dict(devices__servo__ids=[300]), "devices.servo.ids[0]: expected a whole number >= 0 <= 252, got 300"),
    (dict(devices__servo__ids=[]), "devices.servo.ids: expected a list of whole numbers (at least 1)"),
    (dict(devices__servo__positions=[5000]), "devices.servo.positions[0]: expected a whole number >= 0 <= 4095"),
    (dict(devices__imu__stall_timeout_s=-0.5), "devices.imu.stall_timeout_s: expected a number > 0"),
    (dict(devices__imu__open_timeout_s=0), "devices.imu.open_timeout_s: expected a number > 0"),
    (dict(devices__gnss__window_s=0), "devices.gnss.window_s: expected a number > 0"),
    (dict(devices__camera__width=0), "devices.camera.width: expected a whole number > 0"),
    (dict(devices__servo__roundtrip_samples=0), "devices.servo.roundtrip_samples: expected a whole number >= 1"),
    (dict(devices__imu__jitter_p99_ms=-1), "devices.imu.jitter_p99_ms: expected a number > 0"),
    (dict(devices__imu__max_drops=-1), "devices.imu.max_drops: expected a whole number >= 0"),
    (dict(devices__imu__emulator={"jitter_ms": -1}), "devices.imu.emulator.jitter_ms: expected a number >= 0"),
    (dict(devices__imu__emulator={"jiter_ms": 1}), "devices.imu.emulator.jiter_ms: unknown setting (did you mean 'jitter_ms'?)"),
    (dict(devices__gnss__emulator={"lat": 91}), "devices.gnss.emulator.lat: expected a number >= -90 <= 90"),
    (dict(lock_timeout_s=-1), "lock_timeout_s: expected a number > 0"),
    (dict(health_timeout_s=0), "health_timeout_s: expected a number > 0"),
    (dict(sensor_window_s=float("inf")), "sensor_window_s: expected a number > 0"),
    (dict(latency_samples=0), "latency_samples: expected a whole number >= 1"),
    (dict(budgets__loop_p99_ms=0), "budgets.loop_p99_ms: expected a number > 0"),
    (dict(devices__imu__faults=[{"kind": "rate_drop", "rate_hz": -5}]),
     "devices.imu.faults[0].rate_hz: expected a number > 0"),
    (dict(devices__imu__faults=[{"kind": "stall", "duration_s": 0}]),
     "devices.imu.faults[0].duration_s: expected a number > 0"),
    (dict(devices__imu__faults=[{"kind": "corrupt", "fraction": 1.5}]),
     "devices.imu.faults[0].fraction: expected a number >= 0 <= 1"),
    (dict(devices__imu__faults=[{"kind": "stal"}]),
     "devices.imu.faults[0].kind: unknown fault 'stal' (did you mean 'stall'?)"),
    (dict(devices__camera__faults=[{"kind": "hw_error"}]),
     "devices.camera.faults[0].kind: hw_error means nothing to a camera"),
    (dict(devices__servo__faults=[{"kind": "hw_error", "code": 300}]),
     "devices.servo.faults[0].code: expected a whole number >= 0 <= 255"),
]


@pytest.mark.parametrize("changes, message", BAD_RIGS, ids=[m.split(":")[0] for _, m in BAD_RIGS])
def test_every_rig_field_has_a_type_and_a_range(tmp_path, changes, message):
    path = write(tmp_path, rig_data(**changes))
    with pytest.raises(RigError) as err:
        load_rig(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text, text
    assert "\n" not in text


def test_the_sim_and_jetson_rigs_still_load():
    for rig in sorted((ROOT / "hil_tests" / "rigs").glob("*.yaml")):
        assert load_rig(rig).devices


@pytest.mark.parametrize("text, message", [
    ("rate_drop:rate_hz=-5", "rate_hz: expected a number > 0 <= 10000, got -5"),
    ("rate_drop:rate_hz=0", "rate_hz: expected a number > 0 <= 10000, got 0"),
    ("stall:duration_s=-1", "duration_s: expected a number > 0"),
    ("stall:after_s=nan", "after_s: expected a number >= 0"),
    ("stall:after_s=soon", "after_s: expected a number >= 0 <= 3600, got 'soon'"),
    ("corrupt:fraction=2", "fraction: expected a number >= 0 <= 1, got 2"),
    ("stall:duration=2", "duration: unknown setting (did you mean 'duration_s'?)"),
    ("stall:duration_s", "'duration_s': expected key=value"),
    ("melt", "kind: unknown fault 'melt'"),
])
def test_fault_specs_are_read_with_the_settings_core(text, message):
    with pytest.raises(FaultError) as err:
        parse_fault(text, file="--hil-fault imu:" + text)
    assert str(err.value).startswith("--hil-fault imu:") and message in str(err.value), str(err.value)


def test_hw_error_is_refused_where_the_protocol_has_no_such_thing():
    assert parse_fault("hw_error", allowed=("hw_error", "stall")).kind == "hw_error"
    with pytest.raises(FaultError, match="kind: hw_error means nothing to a camera"):
        parse_fault("hw_error", device_kind="camera", allowed=("stall",))


def run(args: list[str], cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=child_env(), capture_output=True, text=True,
                          timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if all(f in ln for f in fragments)]
    assert lines, f"no line with {fragments}:\n{out}"


def test_a_bad_rig_is_one_line_in_pytest_in_the_stage_and_in_emulate(tmp_path):
    path = write(tmp_path, rig_data(devices__imu__rate_hz=0))
    where = (str(path), "devices.imu.rate_hz: expected a number > 0")
    pytest_run = run(["-m", "pytest", "hil_tests", "--rig", str(path), "-q", "-p", "no:cacheprovider"])
    assert pytest_run.returncode == 4, pytest_run.stdout + pytest_run.stderr
    one_line_error(pytest_run, *where)
    # the stage in a project of its own: in the repository it would write (and first delete) the reports of a
    # `hil` stage that `hilci run` may be running beside the build stage that runs this test
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "hil_tests").symlink_to(ROOT / "hil_tests")
    (proj / "hilci.yaml").write_text("pipeline: hilci.example:PIPELINE\n")
    stage = run(["-m", "hilci", "stage", "hil", "--rig", str(path)], cwd=proj)
    assert stage.returncode == 2, stage.stdout + stage.stderr
    one_line_error(stage, *where)
    emulate = run(["-m", "hilci", "emulate", str(path), "--for", "1"])
    assert emulate.returncode == 2, emulate.stdout + emulate.stderr
    one_line_error(emulate, "hilci: error:", *where)


def test_bad_faults_on_the_command_line_are_usage_errors(tmp_path):
    path = write(tmp_path, rig_data())
    base = ["-m", "pytest", "hil_tests", "--rig", str(path), "-q", "-p", "no:cacheprovider", "-k", "TestImu"]
    for fault, message in [
        ("imu:rate_drop:rate_hz=-5", "--hil-fault imu:rate_drop:rate_hz=-5: rate_hz: expected a number > 0"),
        ("camera:hw_error", "--hil-fault camera:hw_error: kind: hw_error means nothing to a camera"),
        ("imu:stall@TestImu::test_rates", "--hil-fault imu:stall@TestImu::test_rates: no selected test opens imu "
                                          "and matches 'TestImu::test_rates'"),
        ("imu:stall@TestGnss::test_rate", "no selected test opens imu and matches 'TestGnss::test_rate'"),
    ]:
        proc = run([*base, "--hil-fault", fault])
        assert proc.returncode == 4, (fault, proc.stdout + proc.stderr)
        one_line_error(proc, message)
    emulate = run(["-m", "hilci", "emulate", str(path), "--fault", "imu:rate_drop:rate_hz=-5", "--for", "1"])
    assert emulate.returncode == 2, emulate.stdout + emulate.stderr
    one_line_error(emulate, "hilci: error: --fault imu:rate_drop:rate_hz=-5: rate_hz: expected a number > 0")
