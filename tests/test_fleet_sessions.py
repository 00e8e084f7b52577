"""The fleet through real pytest sessions on emulated rigs: a dead rig quarantined after N runs and skipped by a
picking run (naming why), a quarantined rig given explicitly failing as infrastructure with why, a sick rig
power-cycled at session start, a lease that expires failing the next test as infrastructure."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from hilci.hil import fleet
from hilci.results import junit
from tests.conftest import REPO

pytestmark = pytest.mark.emulator

GNSS = {"driver": "gnss", "baud": 115200}
DEAD = {**GNSS, "faults": [{"kind": "disconnect", "after_s": 0, "duration_s": 3600}]}  # silent from power-on

SUITE = textwrap.dedent('''
    import time
    import pytest
    from hilci.hil import fleet

    pytestmark = pytest.mark.sensor

    def test_fix(gnss):
        cap = gnss.capture(0.5)
        assert not cap.error, cap.error
        assert cap.sentences > 0

    def test_steal(request):
        """Another process takes this session's lease (as if ours had expired), then the heartbeat notices."""
        import os
        if not os.environ.get("STEAL"):
            pytest.skip("not asked")
        where = fleet.folder()
        def apply(state, _fleet):
            state["lease"] = {**state["lease"], "token": "someone-else", "pid": 4242, "label": "next build"}
        fleet.change(os.environ["STEAL"], where, apply)
        time.sleep(1.0)

    def test_after_steal(gnss):
        cap = gnss.capture(0.2)
        assert cap.sentences > 0
''')


def write_rig(folder: Path, name: str, gnss: dict, **top) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "emulate": True, "health_timeout_s": 1.0, "devices": {"gnss": gnss},
                                    **top}))
    return path


def session(folder: Path, rigs: list[Path], *extra: str, env: dict | None = None, k: str = "test_fix"):
    (folder / "test_suite.py").write_text(SUITE)
    xml = folder / "junit.xml"
    xml.unlink(missing_ok=True)
    full = {k: v for k, v in os.environ.items() if not k.startswith("HILCI_")}
    full.update({"HILCI_LOCK_DIR": str(folder / "locks"), **(env or {})})
    args = [a for rig in rigs for a in ("--rig", str(rig))]
    proc = subprocess.run([sys.executable, "-m", "pytest", str(folder / "test_suite.py"), *args, *extra, "-k", k,
                           f"--junitxml={xml}", "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit2",
                           "--rootdir", str(folder), "-W", "ignore"], cwd=REPO, env=full, capture_output=True,
                          text=True, timeout=180)
    return proc, {c.name: c for c in junit.read_cases(xml)} if xml.exists() else {}


def test_a_dead_rig_is_quarantined_then_skipped_by_a_picking_run_and_failed_as_infrastructure_when_given(tmp_path):
    q = {"after": 2, "max_share": 0.5}
    dead = write_rig(tmp_path, "dead", DEAD, quarantine=q)
    good = write_rig(tmp_path, "good", GNSS, quarantine=q)
    where = fleet.folder(tmp_path / "locks")
    for _ in (1, 2):  # the picking run takes the first rig in service: the dead one, until it is quarantined
        proc, cases = session(tmp_path, [dead, good], "--hil-pick")
        case = cases["test_fix[gnss]"]
        assert case.status == junit.ERROR and case.failure_class == junit.INFRASTRUCTURE, proc.stdout
    assert "hil: rig dead quarantined: 2 consecutive infrastructure failures, the last: gnss at " in proc.stdout
    why = fleet.quarantined("dead", where)
    assert why.startswith("rig dead is quarantined since ")

    proc, cases = session(tmp_path, [dead, good], "--hil-pick")
    assert proc.returncode == 0, proc.stdout
    assert f"hil: {why}: skipped" in proc.stdout
    assert cases["test_fix[gnss]"].status == junit.PASSED
    assert fleet.read("good", where)["runs"] == 1 and fleet.read("dead", where)["runs"] == 2

    proc, cases = session(tmp_path, [dead])  # given explicitly: not opened, its tests are the rig's failures
    case = cases["test_fix[gnss]"]
    assert case.status == junit.ERROR and case.failure_class == junit.INFRASTRUCTURE
    assert why in case.message
    assert fleet.read("dead", where)["runs"] == 2  # a run it was not part of counts nothing


def test_a_sick_rig_with_a_switch_is_power_cycled_at_session_start(tmp_path):
    sick = write_rig(tmp_path, "sick", DEAD, power={"switch": "emulated", "off_s": 0.2})
    proc, cases = session(tmp_path, [sick])
    assert cases["test_fix[gnss]"].status == junit.PASSED, proc.stdout
    assert "hil: sick:gnss did not answer at session start (gnss at " in proc.stdout, proc.stdout
    assert "; power-cycled: answers now" in proc.stdout, proc.stdout
    health = fleet.read("sick", fleet.folder(tmp_path / "locks"))["last_health"]
    assert health["ok"] and health["by"] == "session start"


def test_a_lease_that_expires_fails_the_next_test_as_infrastructure(tmp_path):
    rig = write_rig(tmp_path, "bench", GNSS, lease_timeout_s=0.6)
    proc, cases = session(tmp_path, [rig], "--hil-pick", env={"STEAL": "bench"},
                          k="test_steal or test_after_steal")
    case = cases["test_after_steal[gnss]"]
    assert case.status == junit.ERROR and case.failure_class == junit.INFRASTRUCTURE, proc.stdout
    assert "rig bench: lease of pid " in case.message and "expired: not renewed within 0.6 s; the rig went to " \
                                                          "pid 4242 (next build)" in case.message
    assert fleet.read("bench", fleet.folder(tmp_path / "locks"))["lease"]["token"] == "someone-else"


def test_xdist_workers_use_the_rig_their_controller_picked(tmp_path):
    first = write_rig(tmp_path, "first", GNSS)
    second = write_rig(tmp_path, "second", GNSS)
    proc, cases = session(tmp_path, [first, second], "--hil-pick", "-n", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(cases) == ["test_fix[gnss]"]  # one rig's tests: a single rig's ids carry no rig name
    where = fleet.folder(tmp_path / "locks")
    assert (fleet.read("first", where)["runs"], fleet.read("second", where)["runs"]) == (1, 0)
    assert fleet.read("first", where)["lease"] is None  # released at the end


def test_hilci_rigs_check_asks_a_real_rig_now_and_a_pass_brings_it_back(tmp_path):
    import shutil
    import tempfile

    from hilci.hil.emulators.process import RigEmulators
    from hilci.hil.rig import load_rig
    from tests.conftest import hilci

    folder = Path(tempfile.mkdtemp(prefix="hilci-fc-"))  # short: unix socket paths are limited
    sim = write_rig(folder, "desk-sim", GNSS)
    (folder / "ports").mkdir()
    emus = RigEmulators(load_rig(sim), folder / "ports").start()  # wired as a real rig: ports are links to ptys
    real = folder / "desk.yaml"
    real.write_text(yaml.safe_dump({"name": "desk", "emulate": False, "health_timeout_s": 2, "devices": {
        "gnss": {**GNSS, "port": emus.handles["gnss"].port}}, "quarantine": {"after": 2, "max_share": 1}}))
    try:
        locks = folder / "locks"
        where = fleet.folder(locks)
        fleet.register("desk", str(real), fleet.QuarantineSettings(after=2, max_share=1), where)
        for _ in range(2):  # quarantined by its runs: a passing device-plugin probe would not bring it back
            fleet.record_run("desk", 1, 0, "servo dropped out", where)
        assert fleet.quarantined("desk", where)
        proc = hilci(tmp_path, "rigs", "check", str(real), "--lock-dir", str(locks))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.splitlines() == ["rig desk: every device answered",
                                            "rig desk back in service: health probe passed (hilci rigs check)"]
        emus.handles["gnss"].stop()
        proc = hilci(tmp_path, "rigs", "check", str(real), "--lock-dir", str(locks))
        assert proc.returncode == 1 and proc.stdout.startswith("rig desk: FAILED: gnss at "), proc.stdout
        assert fleet.read("desk", where)["last_health"]["ok"] is False
        emulated = write_rig(tmp_path, "sim", GNSS)
        proc = hilci(tmp_path, "rigs", "check", str(emulated), "--lock-dir", str(locks))
        assert proc.returncode == 2 and proc.stderr.strip() == (
            f"hilci: error: {emulated}: an emulated rig's devices exist only inside a test session: nothing to check")
    finally:
        emus.stop()
        shutil.rmtree(folder, ignore_errors=True)
