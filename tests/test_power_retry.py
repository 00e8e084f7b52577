"""Power switches (uhubctl, a GPIO relay, a command, the emulator's own) typed from the rig YAML, and retries for
infrastructure only: a test whose device dropped out runs again once after the device is brought back (power
cycle where declared, else reconnect), recorded in `hil.retried`; a code failure is never retried."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import yaml

from hilci.hil import power
from hilci.hil.power import CommandSwitch, GpioSwitch, PowerError, PowerSettings, UhubctlSwitch
from hilci.hil.rig import RigError, load_rig
from hilci.results import junit
from tests.test_busy_host import ROOT

GNSS = {"driver": "gnss", "baud": 115200}


def rig_file(tmp_path: Path, **top) -> Path:
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump({"name": "bench", "emulate": True, "devices": {"gnss": dict(GNSS)}, **top}))
    return path


def test_a_rig_declares_a_switch_for_itself_or_per_device(tmp_path):
    devices = {"gnss": {**GNSS, "power": {"switch": "gpio", "chip": "gpiochip0", "line": 17}}}
    rig = load_rig(rig_file(tmp_path, power={"switch": "uhubctl", "hub": "1-1", "port": 2}, devices=devices))
    assert (rig.power.switch, rig.power.hub, rig.power.port) == ("uhubctl", "1-1", 2)
    assert rig.power_of(rig.devices["gnss"]).line == 17  # its own switch before the rig's


@pytest.mark.parametrize(("power_field", "emulate", "message"), [
    ({"switch": "uhubctl", "hub": "1-1"}, True, "power.port: required for a uhubctl switch"),
    ({"switch": "relay"}, True, "power.switch:"),
    ({"switch": "command", "on": "x", "off": "y", "of_s": 1}, True, "power.of_s: unknown setting"),
    ({"switch": "emulated"}, False, "power.switch: an emulated switch needs an emulated rig"),
])
def test_a_bad_switch_is_one_line_naming_the_file_and_field(tmp_path, power_field, emulate, message):
    extra = {} if emulate else {"devices": {"gnss": {**GNSS, "port": "/dev/ttyUSB0"}}}
    with pytest.raises(RigError) as err:
        load_rig(rig_file(tmp_path, power=power_field, emulate=emulate, **extra))
    assert message in str(err.value) and str(tmp_path / "rig.yaml") in str(err.value)
    assert "\n" not in str(err.value)


def test_a_command_switch_cycles_off_then_on_and_a_silent_one_is_one_line(tmp_path):
    log = tmp_path / "log"
    settings = PowerSettings(switch="command", off=f"sh -c 'echo off {{device}} >> {log}'",
                             on=f"sh -c 'echo on {{device}} >> {log}'", off_s=0, timeout_s=5)
    CommandSwitch(settings, "rig bench: relay", {"device": "servo"}).cycle()
    assert log.read_text().split("\n")[:2] == ["off servo", "on servo"]
    hung = PowerSettings(switch="command", off="sleep 5", on="true", timeout_s=0.3)
    with pytest.raises(PowerError) as err:
        CommandSwitch(hung, "rig bench: relay").cycle()
    assert str(err.value) == "rig bench: relay: `sleep 5` did not answer within 0.3 s"
    missing = PowerSettings(switch="command", off="no-such-relay-tool off", on="true")
    with pytest.raises(PowerError, match="rig bench: relay: `no-such-relay-tool off` cannot run"):
        CommandSwitch(missing, "rig bench: relay").off()


UHUBCTL = """#!/bin/sh
echo "Current status for hub 1-1 [2109:2813 VIA Labs, Inc. USB2.0 Hub, USB 2.10, 4 ports, ppps]"
for p in 1 2 3 4; do echo "  Port $p: 0100 power"; done
echo "$@" >> "$(dirname "$0")/calls"
"""


@pytest.fixture
def fake_uhubctl(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "uhubctl").write_text(UHUBCTL)
    (folder / "uhubctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


def test_uhubctl_switches_its_port_and_a_missing_port_is_named(fake_uhubctl):
    switch = UhubctlSwitch(PowerSettings(switch="uhubctl", hub="1-1", port=2, off_s=0), "rig bench: servo")
    switch.verify()
    switch.cycle()
    calls = (fake_uhubctl / "calls").read_text().splitlines()
    assert calls[-2:] == ["-l 1-1 -p 2 -a off", "-l 1-1 -p 2 -a on"]
    with pytest.raises(PowerError) as err:
        UhubctlSwitch(PowerSettings(switch="uhubctl", hub="1-1", port=7), "rig bench: servo").verify()
    assert str(err.value) == "rig bench: servo: hub 1-1 has no port 7 (ports 1, 2, 3, 4)"


def test_a_switch_naming_a_missing_hub_port_is_a_rig_error_when_the_session_starts(tmp_path, fake_uhubctl):
    rig = rig_file(tmp_path, emulate=False, power={"switch": "uhubctl", "hub": "1-1", "port": 9},
                   devices={"gnss": {**GNSS, "port": str(tmp_path / "no-port")}})
    proc = subprocess.run([sys.executable, "-m", "pytest", "hil_tests", "--rig", str(rig), "-q", "-p",
                           "no:cacheprovider", "-k", "test_present"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PATH": os.environ["PATH"]})
    assert proc.returncode == 4, proc.stdout + proc.stderr  # a usage error: the rig is wrong
    assert f"{rig}: power: rig bench: uhubctl hub 1-1 port 9: hub 1-1 has no port 9" in proc.stderr


def test_a_gpio_relay_is_held_through_libgpiod(monkeypatch):
    calls = []

    class Request:
        def set_value(self, line, value):
            calls.append(("set", line, value))

    gpiod = types.ModuleType("gpiod")
    gpiod.LineSettings = lambda **kw: kw
    gpiod.request_lines = lambda path, consumer, config: calls.append(("request", path, config)) or Request()
    line = types.ModuleType("gpiod.line")
    line.Direction = types.SimpleNamespace(OUTPUT="out")
    line.Value = types.SimpleNamespace(ACTIVE="active", INACTIVE="inactive")
    monkeypatch.setitem(sys.modules, "gpiod", gpiod)
    monkeypatch.setitem(sys.modules, "gpiod.line", line)
    switch = GpioSwitch(PowerSettings(switch="gpio", chip="gpiochip0", line=17, active_low=True, off_s=0), "r")
    switch.cycle()
    assert calls[0] == ("request", "/dev/gpiochip0", {17: {"direction": "out", "output_value": "inactive",
                                                           "active_low": True}})
    assert calls[1] == ("set", 17, "active")
    assert power.describe(switch.power) == "gpio gpiochip0 line 17"


# --- retries through pytest, with the emulator's disconnect -------------------------------------------
FLAKY = textwrap.dedent('''
    from pathlib import Path

    import pytest

    from hilci.hil.emulators.process import send
    from hilci.hil.plugin.fixtures import KEY

    pytestmark = pytest.mark.sensor
    HERE = Path(__file__).parent

    def attempt(name):
        path = HERE / f"{name}.attempts"
        n = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(n))
        return n

    def test_flaky_cable(gnss, request):
        if attempt("flaky") == 1:  # the cable drops out during the first attempt only
            control = request.config.stash[KEY].emulation.controls["bench:gnss"]
            send(control, {"cmd": "fault", "kind": "disconnect", "duration_s": OUTAGE_S})
        cap = gnss.capture(1.0)
        if cap.error:
            pytest.fail(cap.error, pytrace=False)
        assert cap.sentences > 0

    def test_code_bug(gnss):
        attempt("bug")
        assert 1 + 1 == 3, "a bug in our code"
''')


def run_flaky(tmp_path: Path, outage_s: float, **top) -> tuple[subprocess.CompletedProcess, dict]:
    (tmp_path / "test_flaky.py").write_text(FLAKY.replace("OUTAGE_S", str(outage_s)))
    rig = rig_file(tmp_path, health_timeout_s=2.0, **top)
    xml = tmp_path / "junit.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HILCI_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_flaky.py"), "--rig", str(rig),
                           f"--junitxml={xml}", "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit2",
                           "--rootdir", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)
    return proc, {c.name: c for c in junit.read_cases(xml)} if xml.exists() else {}


@pytest.mark.emulator
@pytest.mark.parametrize(("outage_s", "top", "how"), [
    (60, {"power": {"switch": "emulated", "off_s": 0.2}}, "gnss power-cycled"),  # only a power cycle ends it
    (0.5, {}, "gnss reconnected"),  # no switch: wait for the port to come back
])
def test_a_device_that_dropped_out_is_brought_back_and_its_test_retried_once(tmp_path, outage_s, top, how):
    proc, cases = run_flaky(tmp_path, outage_s, **top)
    out = proc.stdout + proc.stderr
    flaky, bug = cases["test_flaky_cable[gnss]"], cases["test_code_bug[gnss]"]
    assert flaky.status == junit.PASSED, out
    assert "disconnected" in flaky.retried and how in flaky.retried, flaky.retried
    assert (tmp_path / "flaky.attempts").read_text() == "2"
    # a code failure is never retried, and says it is the code's
    assert bug.status == junit.FAILED and bug.failure_class == junit.CODE_FAILURE and not bug.retried
    assert (tmp_path / "bug.attempts").read_text() == "1"
    assert proc.returncode == 1


@pytest.mark.emulator
def test_a_device_that_does_not_come_back_keeps_its_failure_and_says_why(tmp_path):
    proc, cases = run_flaky(tmp_path, 60)  # no switch, and the cable stays out
    flaky = cases["test_flaky_cable[gnss]"]
    # under load its reconnect once read another emulator's pty at the freed number (tests/test_emulator_link.py)
    out = (proc.stdout + proc.stderr)[-4000:]
    assert flaky.status == junit.ERROR and flaky.failure_class == junit.INFRASTRUCTURE, out
    assert flaky.retried.startswith("not retried: gnss reconnected but gnss at "), (flaky.retried, out)
    assert (tmp_path / "flaky.attempts").read_text() == "1"
