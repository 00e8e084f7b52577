"""Device kinds as plugins: found through the `hilci.kinds` entry-point group (hilci's own four among them) and a
project's `kinds:` list, by every command that reads a rig; `hilci init` writes a project that runs at once, and
the motor kind of docs/library.md runs against its emulator with its safe state."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hilci.hil.discovery import BUILTIN, GROUP
from tests.scratch import child_env

REPO = Path(__file__).resolve().parents[1]


def documented_motor_module() -> str:
    """The motor kind that docs/library.md shows as one module."""
    text = (REPO / "docs" / "library.md").read_text()
    return re.search(r"```python\n(# motorctl/__init__\.py.*?)```", text, re.S).group(1)


def documented_motor_tests() -> str:
    text = (REPO / "docs" / "library.md").read_text()
    return re.search(r"```python\n(# hil_tests/test_motor\.py.*?)```", text, re.S).group(1)


def hilci(cwd: Path, *args: str, pythonpath: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
    env = child_env(CI="true")
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, "-m", "hilci", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def fake_package(site: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata sees one: a dist-info with entry points, and its modules."""
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for module, text in modules.items():
        (site / f"{module}.py").write_text(text)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    proc = hilci(root, "init")
    assert proc.returncode == 0, proc.stderr
    return root


def test_hilci_registers_its_own_kinds_through_its_entry_point(tmp_path: Path):
    # from a folder of no checkout: a stale hilci.egg-info in the repository root would shadow the install
    code = (f"from importlib import metadata; print([ep.dist.name for ep in metadata.entry_points(group={GROUP!r}) "
            f"if ep.value == {BUILTIN!r}])")
    env = child_env()
    env.pop("PYTHONPATH", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60).stdout
    assert out.strip() == "['hilci']"


def test_registry_no_longer_imports_the_builtin_kinds():
    source = (REPO / "ci" / "hil" / "registry.py").read_text()
    assert "hilci.hil.kinds" not in source


def test_init_writes_a_project_that_runs_and_refuses_to_overwrite(project: Path):
    for rel in ("hilci_pipeline.py", "hilci.yaml", "hil_tests/rigs/sim.yaml", "hil_tests/conftest.py",
                "hil_tests/test_imu.py", "podtemplates/cpu.yaml", "podtemplates/jetson-orin-nano.yaml", "Jenkinsfile"):
        assert (project / rel).is_file(), rel
    again = hilci(project, "init")
    assert again.returncode == 2 and "hilci_pipeline.py, hilci.yaml" in again.stderr
    assert "nothing was written" in again.stderr and "Traceback" not in again.stderr
    check = hilci(project, "jenkinsfile", "--check")
    assert check.returncode == 0, check.stderr
    assert "HILCI_PIPELINE = 'hilci_pipeline:PIPELINE'" in (project / "Jenkinsfile").read_text()


@pytest.mark.slow  # a whole `hilci run`: the emulated IMU suite
@pytest.mark.pipeline
def test_init_then_run_is_green(project: Path):
    proc = hilci(project, "run", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3/3 stages passed" in proc.stdout


def test_a_project_kind_named_in_hilci_yaml_serves_doctor_emulate_and_pytest(project: Path):
    (project / "motorctl.py").write_text(documented_motor_module())
    (project / "hil_tests" / "test_motor.py").write_text(documented_motor_tests())
    cfg = yaml.safe_load((project / "hilci.yaml").read_text())
    cfg["kinds"] = ["motorctl"]
    (project / "hilci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    rig = yaml.safe_load((project / "hil_tests" / "rigs" / "sim.yaml").read_text())
    rig["devices"] = {"motor": {"driver": "motor", "baud": 115200, "ident": "MC1"}}
    (project / "hil_tests" / "rigs" / "sim.yaml").write_text(yaml.safe_dump(rig))
    doctor = hilci(project, "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    emulate = hilci(project / "hil_tests", "emulate", "rigs/sim.yaml", "--for", "0.5")
    assert emulate.returncode == 0, emulate.stdout + emulate.stderr
    assert "motor" in emulate.stdout
    env = child_env()
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "hil_tests/test_motor.py", "--rig",
                           "hil_tests/rigs/sim.yaml", "-q", "-p", "no:cacheprovider"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


BAD_RIG = "name: lab\nemulate: true\ndevices:\n  imu: {driver: imu}\n"


@pytest.mark.parametrize(("packages", "message"), [
    ([("badkind", {"bad": "badkind"}, {"badkind": "raise RuntimeError('no license server')\n"})],
     "hilci: error: entry point 'bad = badkind' of package badkind 0.1 (group hilci.kinds): cannot load device "
     "kinds (RuntimeError: no license server)"),
    ([("twokinds", {"one": "kind_one:register_kinds", "two": "kind_two"},
       {"kind_one": "from hilci.hil.kinds import ImuSettings\n"
                    "from hilci.hil.registry import SENSOR, DeviceKind\n"
                    "def register_kinds():\n"
                    "    return [DeviceKind('gyro', SENSOR, ImuSettings, 'a:Driver', 'a:Emulator')]\n",
        "kind_two": "from hilci.hil.kinds import GnssSettings\n"
                    "from hilci.hil.registry import SENSOR, DeviceKind, register\n"
                    "register(DeviceKind('gyro', SENSOR, GnssSettings, 'b:Driver', 'b:Emulator'))\n"})],
     "hilci: error: entry point 'two = kind_two' of package twokinds 0.1 (group hilci.kinds): device kind gyro: "
     "already registered (by a:Driver)"),
])
def test_a_kind_plugin_that_cannot_load_is_one_line_naming_its_entry_point(tmp_path: Path, packages, message):
    site = tmp_path / "site"
    for name, eps, modules in packages:
        fake_package(site, name, eps, modules)
    (tmp_path / "rig.yaml").write_text(BAD_RIG)
    proc = hilci(tmp_path, "emulate", "rig.yaml", "--for", "0.2", pythonpath=str(site))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [message]


def test_a_project_kind_that_does_not_import_is_one_line_naming_hilci_yaml(project: Path):
    cfg = yaml.safe_load((project / "hilci.yaml").read_text())
    cfg["kinds"] = ["motorctl"]
    (project / "hilci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (project / "motorctl.py").write_text("import no_such_serial_library\n")
    for args in (("doctor",), ("run", "--only", "check")):  # also where no stage reads a rig
        proc = hilci(project, *args)
        assert proc.returncode == 2, args
        assert proc.stderr.strip().splitlines() == [
            "hilci: error: hilci.yaml: kinds: motorctl: cannot load device kinds (ModuleNotFoundError: No module "
            "named 'no_such_serial_library')"], args


HANGING = '''
import time

import pytest

pytestmark = pytest.mark.actuator


def test_hangs_with_the_motor_running(motor):
    motor.enable(True)
    motor.set_speed(300)
    time.sleep(60)
'''


def test_a_hanging_hil_test_ends_by_the_plugins_own_time_limit(project: Path):
    """No conftest of the project's sets a timeout: the plugin's --hil-timeout interrupts the test (signal
    method), so its teardown and the actuators' safe state still run."""
    (project / "motorctl.py").write_text(documented_motor_module())
    (project / "hil_tests" / "test_hang.py").write_text(HANGING)
    assert "timeout" not in (project / "hil_tests" / "conftest.py").read_text()
    rig = project / "motor.yaml"
    rig.write_text(yaml.safe_dump({"name": "sim", "emulate": True,
                                   "devices": {"motor": {"driver": "motor", "baud": 115200}}}))
    env = child_env()
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "hil_tests/test_hang.py", "--rig", str(rig), "-p", "motorctl",
                           "--hil-timeout", "2", "-q", "-p", "no:cacheprovider"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Timeout (>2.0s) from pytest-timeout" in proc.stdout, proc.stdout
