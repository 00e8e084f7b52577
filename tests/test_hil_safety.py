"""Safe state on every exit path (pass, failure, pytest-timeout, Ctrl-C, SIGTERM) checked on the emulator, and
exclusive devices: a second process waiting for a held device gives up naming the holder's pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hilci.hil.emulators.process import start, wait_for
from hilci.hil.locks import DeviceBusy, DeviceLock
from hilci.hil.rig import load_rig

pytestmark = [pytest.mark.emulator]  # what it needs: the fast tier leaves it out

ROOT = Path(__file__).resolve().parents[1]

HOLD_TEST = '''
import os, time, pytest
pytestmark = pytest.mark.actuator

@pytest.mark.timeout(1.5, method="signal")
def test_hold(servo):
    servo.torque(1, True)
    servo.goal(1, 4000)
    mode = os.environ["HOLD_MODE"]
    assert mode != "fail", "failing on purpose with torque on"
    if mode != "pass":
        time.sleep(20)
'''


@pytest.fixture
def servo_emulator(tmp_path):
    """A servo emulator outside pytest's own process tree, so its state can be read after pytest exits."""
    emu_rig = tmp_path / "emu.yaml"
    emu_rig.write_text(yaml.safe_dump({"name": "bench", "emulate": True,
                                       "devices": {"servo": {"driver": "servo", "baud": 1000000}}}))
    handle = start(load_rig(emu_rig).devices["servo"], tmp_path / "servo-port")
    rig = tmp_path / "real.yaml"  # the run under test sees a "real" rig: a port, no emulation
    rig.write_text(yaml.safe_dump({"name": "bench", "emulate": False, "devices": {
        "servo": {"driver": "servo", "baud": 1000000, "port": handle.port}}}))
    (tmp_path / "test_hold.py").write_text(HOLD_TEST)
    yield handle, rig
    handle.stop()


@pytest.mark.parametrize("mode", ["pass", "fail", "timeout", "sigint", "sigterm"])
def test_torque_is_off_after_every_exit_path(servo_emulator, tmp_path, mode):
    handle, rig = servo_emulator
    env = dict(os.environ, HOLD_MODE=mode)
    env.pop("HILCI_HIL_STATE", None)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", str(tmp_path / "test_hold.py"), "--rig", str(rig),
                             "-q", "-p", "no:cacheprovider"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    motor = lambda: handle.command({"cmd": "state"})["motors"]["1"]  # noqa: E731
    if mode in ("sigint", "sigterm"):
        assert wait_for(lambda: motor()["torque"] == 1, 15), "the test never enabled torque"
        proc.send_signal(signal.SIGINT if mode == "sigint" else signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    expected = {"pass": 0, "fail": 1, "timeout": 1, "sigint": 2, "sigterm": 2}[mode]
    assert proc.returncode == expected, out
    state = motor()
    assert state["torque_ever"], "the test never enabled torque"
    assert state["torque"] == 0, f"torque still on after {mode}: {out}"
    if mode == "timeout":
        assert "Timeout" in out


def test_lock_waiter_names_the_holder(tmp_path):
    port = str(tmp_path / "ttyFAKE")
    Path(port).write_text("")
    with DeviceLock(port, "imu at " + port, folder=tmp_path):
        code = ("import sys; from pathlib import Path; from hilci.hil.locks import DeviceLock, DeviceBusy\n"
                f"try:\n    DeviceLock({port!r}, 'imu at {port}', timeout=0.3, folder=Path({str(tmp_path)!r})).acquire()\n"
                "except DeviceBusy as e:\n    print(e); sys.exit(3)\n")
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3, proc.stderr
    assert f"held by pid {os.getpid()}" in proc.stdout and "imu at" in proc.stdout
    # released: the next one gets it at once, and a dead holder never leaves a stale lock
    t0 = time.monotonic()
    with DeviceLock(port, "imu", timeout=0.3, folder=tmp_path):
        pass
    assert time.monotonic() - t0 < 0.3


def test_lock_is_exclusive_within_one_name_and_reentrant(tmp_path):
    lock = DeviceLock("/dev/ttyUSB9", "servo", timeout=0.1, folder=tmp_path)
    with lock, lock:
        other = DeviceLock("/dev/ttyUSB9", "servo", timeout=0.1, folder=tmp_path)
        with pytest.raises(DeviceBusy):
            other.acquire()
    with DeviceLock("/dev/ttyUSB9", "servo", timeout=0.1, folder=tmp_path):
        pass
