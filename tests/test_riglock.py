"""The rig device plugin's health probe against a real pytest session on the rig: while the session runs, between
its tests included, the probe opens no device of the rig; once the session ends it probes again."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hilci.hil.locks import DeviceBusy, RigLock
from hilci.hil.rig import load_rig
from hilci.kube.deviceplugin import righealth
from tests.kubelet_standin import wire_emulated_rig
from tests.scratch import child_env

pytestmark = [pytest.mark.emulator]  # what it needs: the fast tier leaves it out

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 60.0  # bounds every wait on the pytest session (a loaded host starts it slowly)

SESSION_TESTS = '''
import os
import time
from pathlib import Path


def test_talks_to_the_imu(imu):
    assert imu is not None


def test_between_device_tests():
    """No device fixture: no device lock is held now, only the session's rig lock."""
    signal = Path(os.environ["RIGLOCK_SIGNAL"])
    (signal / "ready").write_text("between tests")
    deadline = time.monotonic() + 60
    while not (signal / "done").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (signal / "done").exists()


def test_talks_to_the_servo(servo):
    assert servo is not None
'''


@pytest.fixture
def wired_rig():
    folder = Path(tempfile.mkdtemp(prefix="hilci-rl-"))
    emus, _sim, real = wire_emulated_rig(folder, "desk")
    try:
        yield folder, real
    finally:
        emus.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the pytest session ended before {path.name}:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the pytest session never wrote {path.name}")
        time.sleep(0.05)


def test_the_probe_opens_nothing_of_a_rig_a_pytest_session_holds(wired_rig, monkeypatch):
    folder, real = wired_rig
    locks, signal = folder / "locks", folder / "signal"
    locks.mkdir()
    signal.mkdir()
    tests = folder / "test_session.py"
    tests.write_text(SESSION_TESTS)
    opened: list[str] = []
    real_driver_for = righealth.driver_for

    def recording_driver_for(device, port):
        opened.append(device.label)
        return real_driver_for(device, port)

    monkeypatch.setattr(righealth, "driver_for", recording_driver_for)
    rig = load_rig(real)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", str(tests), "--rig", str(real), "-q",
                             "-p", "no:cacheprovider", "--rootdir", str(folder)], cwd=folder,
                            env=child_env(HILCI_LOCK_DIR=str(locks), RIGLOCK_SIGNAL=str(signal)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(signal / "ready", proc)
        probe = righealth.probe_rig(rig, locks)  # between two device tests: no device lock is held now
        assert probe.in_use and not probe.healthy, probe
        assert "held by a test session" in probe.reason
        assert opened == [], f"the probe opened {opened} while a session held the rig"
    finally:
        (signal / "done").write_text("probed")
        out, _ = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, out
    assert "3 passed" in out
    probe = righealth.probe_rig(rig, locks)  # the session is over: the rig is probed again
    assert probe.healthy and not probe.in_use, probe
    assert opened, "the probe asked no device after the session ended"


def test_a_session_waits_for_a_running_probe_and_then_says_so(wired_rig):
    folder, real = wired_rig
    rig = load_rig(real)
    ports = [d.port for d in rig.devices.values()]
    probe = RigLock(ports, "desk", folder=folder)
    assert probe.try_for_probe()
    try:
        with pytest.raises(DeviceBusy, match="rig desk: its health probe did not let go within 0.2 s"):
            RigLock(ports, "desk", folder=folder).hold_for_session(0.2)
    finally:
        probe.release()
    session = RigLock(ports, "desk", folder=folder).hold_for_session(0.2)
    other = RigLock(ports, "desk", folder=folder).hold_for_session(0.2)  # shared: xdist workers, a resync
    assert not RigLock(ports, "desk", folder=folder).try_for_probe()
    session.release()
    other.release()
    assert RigLock(list(reversed(ports)), "desk", folder=folder).try_for_probe()  # one name, any order
