"""Device kinds: the four built-in ones are registrations with typed settings, and a kind added the way
docs/hil.md shows (one module: settings, driver, emulator, registration) runs against its own emulator, with a
fixture per kind and per named device, and its misspelt settings refused when the rig loads."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hilci.hil.kinds import ImuSettings, ServoSettings
from hilci.hil.registry import ACTUATOR, SENSOR, DeviceKind, DeviceSettings, KindError, kinds, register
from hilci.results.junit import read_cases
from tests.scratch import child_env

pytestmark = [pytest.mark.emulator]  # what it needs: the fast tier leaves it out

ROOT = Path(__file__).resolve().parents[1]

THERMO_TEST = '''
import pytest

from hilci.hil import checks

pytestmark = pytest.mark.sensor


def test_temperature(thermo, gate):
    values, arrivals = thermo.read(thermo.device.settings.window_s)
    s = thermo.device.settings
    gate(checks.enough(arrivals, thermo.device, s.window_s),
         checks.around(thermo.device, "temperature", sum(values) / len(values), "degC", s.celsius, s.tolerance))


def test_named_device_fixture(bench_probe):
    assert bench_probe.device.name == "bench_probe" and bench_probe.device.settings.celsius == 30.0
    values, _ = bench_probe.read(0.5, max_readings=3)
    assert len(values) == 3 and all(29 < v < 31 for v in values)
'''


def documented_kind_module() -> str:
    """The python block that docs/hil.md's "Adding a device kind" shows as one module."""
    text = (ROOT / "docs" / "hil.md").read_text()
    section = text[text.index("## Adding a device kind"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_builtin_kinds_are_one_registration_each():
    found = kinds()
    assert {"imu", "gnss", "camera", "servo"} <= set(found)
    assert [n for n, k in found.items() if k.role == ACTUATOR] == ["servo"]
    assert found["imu"].role == SENSOR and found["imu"].settings is ImuSettings
    assert found["servo"].settings is ServoSettings and issubclass(ServoSettings, DeviceSettings)


def test_register_refuses_a_second_kind_of_a_name_and_a_bad_role():
    with pytest.raises(KindError, match="imu: already registered"):
        register(DeviceKind("imu", SENSOR, ImuSettings, "x:Driver", "x:Emulator"))
    with pytest.raises(KindError, match="role 'motor' is not one of sensor, actuator"):
        register(DeviceKind("lidar", "motor", ImuSettings, "x:Driver", "x:Emulator"))
    with pytest.raises(KindError, match="settings must subclass"):
        register(DeviceKind("lidar", SENSOR, dict, "x:Driver", "x:Emulator"))
    assert "lidar" not in kinds()


def write_thermo(tmp_path: Path, devices: dict) -> Path:
    (tmp_path / "hil_thermo.py").write_text(documented_kind_module())
    (tmp_path / "test_thermo.py").write_text(THERMO_TEST)
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump({"name": "lab", "emulate": True, "health_timeout_s": 2.0, "devices": devices}))
    return rig


def run_pytest(tmp_path: Path, rig: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "hil_thermo", "test_thermo.py", "--rig", str(rig),
                           "-q", "-p", "no:cacheprovider", *args], cwd=tmp_path,
                          env=child_env(PYTHONPATH=f"{tmp_path}:{ROOT}"), capture_output=True, text=True,
                          timeout=120)


def test_a_kind_added_in_one_module_runs_against_its_emulator(tmp_path):
    rig = write_thermo(tmp_path, {
        "thermo": {"driver": "thermo", "rate_hz": 20, "window_s": 0.5, "emulator": {"jitter_ms": 0.1}},
        "bench_probe": {"driver": "thermo", "rate_hz": 20, "celsius": 30.0},
    })
    junit = tmp_path / "junit.xml"
    run = run_pytest(tmp_path, rig, f"--junitxml={junit}")
    assert run.returncode == 0, run.stdout + run.stderr
    cases = {c.name: c for c in read_cases(junit)}
    assert set(cases) == {"test_temperature[thermo]", "test_temperature[bench_probe]",
                          "test_named_device_fixture"}
    temperature = cases["test_temperature[bench_probe]"].measurements["bench_probe.temperature"]
    assert temperature["verdict"] == "pass" and 29 < float(temperature["value"]) < 31


def test_a_misspelt_setting_of_an_added_kind_fails_when_the_rig_loads(tmp_path):
    rig = write_thermo(tmp_path, {"thermo": {"driver": "thermo", "celsuis": 25}})
    run = run_pytest(tmp_path, rig)
    assert run.returncode == 4, run.stdout + run.stderr
    assert f"{rig}: devices.thermo.celsuis: unknown setting (did you mean 'celsius'?)" in run.stderr
    assert "Traceback" not in run.stderr
