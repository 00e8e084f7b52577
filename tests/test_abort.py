"""Abort through the path Jenkins takes: SIGTERM (or SIGINT) to `hilci stage` or `hilci run` while a test holds a
servo torqued. The servo ends torque-off (read on its emulator), the stage JUnit keeps every finished testcase
with its measurements and names the interrupted one as aborted, and nothing is left in the temporary folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hilci.hil.emulators.process import EmulatorHandle, start, wait_for
from hilci.hil.rig import load_rig
from hilci.results import junit
from tests.conftest import alive

pytestmark = [pytest.mark.emulator, pytest.mark.pipeline]  # what it needs: the fast tier leaves it out

ROOT = Path(__file__).resolve().parents[1]

SUITE = '''
import os, time, pytest
from hilci.results.measurements import measure
pytestmark = pytest.mark.actuator

def test_first(servo, gate):
    gate(measure("servo.first.model_number", servo.ping(1), "", low=1060, high=1060))

def test_hold(servo, gate):
    gate(measure("servo.hold.started", 1, ""))
    servo.torque(1, True)
    servo.goal(1, 4000)
    with open(os.environ["HOLD_MARKER"], "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(60)

def test_never(servo):
    pass
'''

SLOW_UNIT_TESTS = '''
import os, time

def test_quick():
    assert 1 + 1 == 2

def test_hangs():
    with open(os.environ["HOLD_MARKER"], "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(60)
'''


def make_hold_project(folder: Path) -> tuple[Path, EmulatorHandle]:
    """A project whose HIL suite holds a servo torqued; the servo's emulator runs outside the run under test
    (the rig calls it a real device), so its state can be read after the run has ended. Also used by
    benchmarks/reliability.py."""
    emu_rig = folder / "emu.yaml"
    emu_rig.write_text(yaml.safe_dump({"name": "bench", "emulate": True,
                                       "devices": {"servo": {"driver": "servo", "baud": 1000000}}}))
    handle = start(load_rig(emu_rig).devices["servo"], folder / "servo-port")
    proj = folder / "proj"
    (proj / "hil_tests").mkdir(parents=True)
    (proj / "hil_tests" / "test_hold.py").write_text(SUITE)
    (proj / "podtemplates").symlink_to(ROOT / "podtemplates")
    (proj / "hilci.yaml").write_text("pipeline: hilci.example:PIPELINE\n")
    (proj / "rig.yaml").write_text(yaml.safe_dump({"name": "bench", "emulate": False, "devices": {
        "servo": {"driver": "servo", "baud": 1000000, "port": handle.port}}}))
    (folder / "tmp").mkdir()
    return proj, handle


@pytest.fixture
def held(tmp_path):
    proj, handle = make_hold_project(tmp_path)
    yield proj, handle
    handle.stop()


def hold_env(tmp_path: Path, proj: Path) -> dict[str, str]:
    env = dict(os.environ, HILCI_ROOT=str(proj), HOLD_MARKER=str(tmp_path / "holding"), CI="1",
               TMPDIR=str(tmp_path / "tmp"), HILCI_LOCK_DIR=str(tmp_path / "locks"))
    for key in ("HILCI_HIL_STATE", "HILCI_PIPELINE"):
        env.pop(key, None)
    return env


def _abort_when_holding(proc: subprocess.Popen, marker: Path, sig: signal.Signals, motor) -> str:
    ok = wait_for(lambda: marker.exists() and motor()["torque"] == 1, 90, interval=0.05)
    if not ok:
        proc.kill()
        pytest.fail("the held test never started: " + proc.communicate(timeout=30)[0])
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=90)
    return out


def _assert_aborted_cleanly(junit_file: Path, tmp_path: Path, sig: signal.Signals, motor, out: str) -> None:
    state = motor()
    assert state["torque_ever"] and state["torque"] == 0, f"torque still on after {sig.name}: {out}"
    cases = {c.name.partition("[")[0]: c for c in junit.read_cases(junit_file)}
    assert cases["test_first"].status == "passed", out
    assert cases["test_first"].measurements["servo.first.model_number"]["verdict"] == "pass"
    hold = cases["test_hold"]
    assert hold.status in ("failed", "error") and hold.message.startswith(f"aborted by {sig.name}"), out
    assert hold.measurements["servo.hold.started"]["value"] == "1.0"  # what it recorded before the abort
    assert "test_never" not in cases
    left = sorted(p.name for p in (tmp_path / "tmp").iterdir())
    assert left == [], f"left behind in the temporary folder: {left}"
    pid = int((tmp_path / "holding").read_text())
    assert not alive(pid), "the pytest child outlived the abort"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_abort_of_hilci_stage_hil_keeps_results_and_leaves_the_servo_safe(held, tmp_path, sig):
    proj, handle = held
    proc = subprocess.Popen([sys.executable, "-m", "hilci", "stage", "hil", "--rig", str(proj / "rig.yaml")],
                            cwd=proj, env=hold_env(tmp_path, proj), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    motor = lambda: handle.command({"cmd": "state"})["motors"]["1"]  # noqa: E731
    out = _abort_when_holding(proc, tmp_path / "holding", sig, motor)
    assert proc.returncode == 128 + sig.value, out
    _assert_aborted_cleanly(proj / "reports" / "junit" / "hil.xml", tmp_path, sig, motor, out)


def test_abort_of_hilci_run_reaches_the_stage_and_its_pytest(held, tmp_path):
    proj, handle = held
    proc = subprocess.Popen([sys.executable, "-m", "hilci", "run", "--only", "hil", "--rig", str(proj / "rig.yaml")],
                            cwd=proj, env=hold_env(tmp_path, proj), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    motor = lambda: handle.command({"cmd": "state"})["motors"]["1"]  # noqa: E731
    out = _abort_when_holding(proc, tmp_path / "holding", signal.SIGTERM, motor)
    assert proc.returncode == 128 + signal.SIGTERM.value, out
    _assert_aborted_cleanly(proj / "reports" / "junit" / "hil.xml", tmp_path, signal.SIGTERM, motor, out)
    merged = {c.name.partition("[")[0]: c for c in junit.read_cases(proj / "reports" / "junit.xml")}
    assert merged["test_first"].status == "passed" and merged["test_hold"].message.startswith("aborted by SIGTERM")


def test_abort_of_the_build_stage_keeps_its_unit_tests(tmp_path):
    proj = tmp_path / "proj"
    (proj / "tests").mkdir(parents=True)
    (proj / "tests" / "test_unit.py").write_text(SLOW_UNIT_TESTS)
    (proj / "hilci.yaml").write_text("pipeline: hilci.example:PIPELINE\n")
    (tmp_path / "tmp").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "hilci", "stage", "build"], cwd=proj, env=hold_env(tmp_path, proj),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    marker = tmp_path / "holding"
    if not wait_for(marker.exists, 120, interval=0.05):
        proc.kill()
        pytest.fail("the unit tests never started: " + proc.communicate(timeout=30)[0])
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 128 + signal.SIGTERM.value, out
    cases = {c.name: c for c in junit.read_cases(proj / "reports" / "junit" / "build.xml")}
    assert cases["test_quick"].status == "passed", out
    assert cases["test_hangs"].message.startswith("aborted by SIGTERM"), out
    assert {"wheel", "ruff"} <= set(cases)  # the stage's own testcases before the abort are kept too
    assert not alive(int(marker.read_text()))


def test_an_abort_waits_for_a_torque_off_in_progress():
    from hilci.stage.interrupt import InterruptGuard, Terminated, uninterrupted

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    InterruptGuard().install()
    done = []
    try:
        with pytest.raises(Terminated, match="SIGTERM"):
            with uninterrupted():
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(100):  # the handler runs in here, inside the section; it must not raise yet
                    sum(range(100))
                done.append("torque off")
        assert done == ["torque off"]
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_abort_on_an_emulated_rig_leaves_no_folder_and_no_process(held, tmp_path):
    proj, _ = held
    (proj / "rig.yaml").write_text(yaml.safe_dump({"name": "sim", "emulate": True, "devices": {
        "servo": {"driver": "servo", "baud": 1000000}}}))
    proc = subprocess.Popen([sys.executable, "-m", "hilci", "stage", "hil", "--rig", str(proj / "rig.yaml")],
                            cwd=proj, env=hold_env(tmp_path, proj), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    marker = tmp_path / "holding"
    if not wait_for(marker.exists, 90, interval=0.05):
        proc.kill()
        pytest.fail("the held test never started: " + proc.communicate(timeout=30)[0])
    def session_folders() -> list[Path]:
        return [p for p in (tmp_path / "tmp").iterdir() if p.name.startswith("hilci-session-")]

    # the emulators and the host clock run in the session folder; on a busy host the clock may come up a
    # little after the test started holding, so wait for its socket (bounded) rather than look once
    assert wait_for(lambda: any((p / "hostclock.sock").exists() for p in session_folders()), 30, interval=0.05), \
        [str(p) for p in (tmp_path / "tmp").rglob("*")]
    session = session_folders()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 128 + signal.SIGTERM.value, out
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == [], out
    helpers = subprocess.run(["pgrep", "-f", str(session[0])], capture_output=True, text=True).stdout.split()
    assert helpers == [], "emulator or host clock processes outlived the abort"
    cases = {c.name.partition("[")[0]: c for c in junit.read_cases(proj / "reports" / "junit" / "hil.xml")}
    assert cases["test_first"].status == "passed" and cases["test_hold"].message.startswith("aborted by SIGTERM")
