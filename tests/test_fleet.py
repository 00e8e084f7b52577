"""The fleet state without emulators: quarantine after N consecutive infrastructure failures, the fleet-wide cap,
release by a passing probe or `hilci rigs release`, leases freed when their holder dies or stops renewing them,
the queue served in order, and `hilci rigs` (table and --json). Sessions on emulated rigs: test_fleet_sessions.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hilci.hil import fleet, lease
from hilci.hil.fleet import QuarantineSettings
from hilci.hil.rig import RigError, load_rig
from tests.conftest import REPO, alive, hilci

Q = QuarantineSettings(after=2, max_share=0.5)


@pytest.fixture
def where(tmp_path: Path) -> Path:
    return fleet.folder(tmp_path / "locks")


def rigs(where: Path, *names: str, quarantine: QuarantineSettings | None = Q) -> None:
    for name in names:
        fleet.register(name, f"/rigs/{name}.yaml", quarantine, where)


def test_n_consecutive_infrastructure_failures_quarantine_a_rig_with_the_reason(where):
    rigs(where, "a", "b", "c", "d")
    assert fleet.record_run("a", 1, 0, "gnss at /dev/x did not answer", where) == ""
    assert fleet.record_run("a", 0, 1, "", where) == ""  # a code failure: the rig worked, the count restarts
    assert fleet.record_run("a", 2, 0, "imu disconnected", where) == ""
    line = fleet.record_run("a", 1, 0, "imu disconnected", where)
    assert line == "rig a quarantined: 2 consecutive infrastructure failures, the last: imu disconnected"
    why = fleet.quarantined("a", where)
    assert why.startswith("rig a is quarantined since ") and why.endswith(": 2 consecutive infrastructure "
                                                                          "failures, the last: imu disconnected")
    state = fleet.read("a", where)
    assert (state["infrastructure"], state["code"], state["runs"]) == (4, 1, 4)
    assert fleet.quarantined("b", where) == ""


def test_a_session_s_passing_start_up_check_does_not_restart_the_count(where):
    rigs(where, "a", "b")
    fleet.record_run("a", 1, 0, "gnss disconnected", where)
    fleet.record_health("a", "", "session start", where, counts=False)  # it answered, then dropped out again
    assert fleet.record_run("a", 1, 0, "gnss disconnected", where).startswith("rig a quarantined: 2 consecutive")
    assert fleet.read("a", where)["last_health"]["ok"]


def test_a_rig_without_quarantine_settings_is_never_taken_out_of_service(where):
    rigs(where, "a", "b", quarantine=None)
    for _ in range(5):
        assert fleet.record_run("a", 1, 0, "gone", where) == ""
    assert fleet.quarantined("a", where) == "" and fleet.read("a", where)["consecutive"] == 5


def test_the_cap_keeps_a_rig_in_service_and_says_so_in_one_line(where):
    rigs(where, "a", "b", "c", "d")  # max_share 0.5 of 4 rigs: 2 at most
    for name in ("a", "b"):
        fleet.record_health(name, "silent", "device plugin", where)
        assert fleet.record_health(name, "silent", "device plugin", where).startswith(f"rig {name} quarantined")
    fleet.record_health("c", "silent", "device plugin", where)
    line = fleet.record_health("c", "silent", "device plugin", where)
    assert line == ("rig c stays in service: quarantine cap reached (2 of 4 rigs quarantined, max_share 0.5); "
                    "2 consecutive failed health probes, the last: health probe (device plugin): silent")
    assert "\n" not in line and fleet.quarantined("c", where) == ""
    assert fleet.read("c", where)["cap_reached"] == line


def test_a_passing_health_probe_or_release_brings_a_rig_back(where):
    rigs(where, "a", "b")
    for _ in range(2):
        fleet.record_health("a", "imu silent", "device plugin", where)
    assert fleet.quarantined("a", where).endswith("2 consecutive failed health probes, the last: health probe "
                                                  "(device plugin): imu silent")
    assert fleet.record_health("a", "", "device plugin", where) == \
        "rig a back in service: health probe passed (device plugin)"
    assert not fleet.quarantined("a", where) and fleet.read("a", where)["probe_streak"] == 0
    for _ in range(2):  # quarantined by its runs: its devices answer a probe and fail under test
        fleet.record_run("a", 1, 0, "gone", where)
    assert fleet.record_health("a", "", "device plugin", where) == "" and fleet.quarantined("a", where)
    assert fleet.record_health("a", "", "session start", where, counts=False) == ""
    assert fleet.release("a", "hilci rigs release", where) == "rig a back in service: released by hilci rigs release"
    with pytest.raises(fleet.UnknownRig):
        fleet.release("nope", "hilci rigs release", where)


def test_state_files_are_replaced_whole(where):
    rigs(where, "a")
    fleet.record_run("a", 1, 0, "gone", where)
    assert sorted(p.name for p in where.iterdir() if p.is_file()) == [".fleet.lock", "a.json"]  # no temp file
    assert json.loads((where / "a.json").read_text())["infrastructure"] == 1


@pytest.mark.parametrize(("quarantine", "message"), [
    ({"after": 0}, "quarantine.after: expected a whole number >= 1"),
    ({"max_share": 1.5}, "quarantine.max_share: expected a number > 0 <= 1, got 1.5"),
    ({"aftr": 3}, "quarantine.aftr: unknown setting (did you mean 'after'?)"),
    ("three", "quarantine: expected a mapping"),
])
def test_a_malformed_quarantine_is_one_line_naming_the_file_and_field(tmp_path, quarantine, message):
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump({"name": "r", "emulate": True, "devices": {"gnss": {"driver": "gnss"}},
                                    "quarantine": quarantine}))
    with pytest.raises(RigError) as err:
        load_rig(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value) and "\n" not in str(err.value)


# --- leases ---------------------------------------------------------------------------------------------
def test_a_lease_is_renewed_while_its_holder_lives_and_released_at_the_end(where):
    me = lease.Presence(where, "me")
    held, note = lease.acquire_any([("a", 0.3)], where, me, wait_s=1)
    assert (held.rig, note) == ("a", "")
    first = fleet.read("a", where)["lease"]["renewed"]
    time.sleep(0.35)  # past its timeout: only the heartbeat keeps it
    state = fleet.read("a", where)
    assert state["lease"]["renewed"] > first and lease.vacancy(state["lease"], where, time.time()) == ""
    held.release()
    me.close()
    assert fleet.read("a", where)["lease"] is None


HOLDER = """
import sys, time
from pathlib import Path
from hilci.hil import lease
where = Path(sys.argv[1])
held, _ = lease.acquire_any([("a", 30.0)], where, lease.Presence(where, "killed holder"), wait_s=5)
print("held", flush=True)
time.sleep(60)
"""


def test_a_dead_holder_s_rig_is_freed_and_the_next_waiter_gets_it(where):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(where)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline().strip() == "held"
        me = lease.Presence(where, "next")
        with pytest.raises(lease.LeaseTimeout, match=r"no rig free within 0.3 s: rig a held by pid \d+ "
                                                     r"\(killed holder\)"):
            lease.acquire_any([("a", 30.0)], where, me, wait_s=0.3)
        os.kill(proc.pid, signal.SIGKILL)  # no release: the kernel drops its presence lock
        proc.wait(5)
        held, note = lease.acquire_any([("a", 30.0)], where, me, wait_s=2)
        assert note == f"holder pid {proc.pid} (killed holder) gone without releasing it"
        assert "lease freed: holder pid" in fleet.read("a", where)["events"][-1]["what"]
        held.release()
        me.close()
    finally:
        if alive(proc.pid):
            proc.kill()
        proc.wait(5)


def test_a_lease_not_renewed_expires_its_rig_goes_on_and_the_holder_is_told(where):
    hung = lease.Presence(where, "hung holder")
    held, _ = lease.acquire_any([("a", 0.3)], where, hung, wait_s=1)
    held.stop.set()  # the holder hangs: its heartbeat stops, its process lives
    held.thread.join(2)
    nxt = lease.Presence(where, "next")
    taken, note = lease.acquire_any([("a", 10.0)], where, nxt, wait_s=3)
    assert note == f"lease of pid {os.getpid()} (hung holder) expired: not renewed within 0.3 s"
    problem = held.renew()
    assert problem.startswith(f"rig a: lease of pid {os.getpid()} expired: not renewed within 0.3 s; the rig went "
                              f"to pid {os.getpid()} (next)")
    taken.release()
    for p in (hung, nxt):
        p.close()


def test_waiters_are_served_in_order_and_a_quarantined_rig_is_skipped(where):
    rigs(where, "a", "b")
    holder, first, second = (lease.Presence(where, n) for n in ("holder", "first", "second"))
    held, _ = lease.acquire_any([("a", 30.0)], where, holder, wait_s=1)
    for p in (first, second):  # both queue up behind the holder
        with pytest.raises(lease.LeaseTimeout):
            lease.acquire_any([("a", 30.0)], where, p, wait_s=0.2)
        lease.try_take("a", where, p, 30.0, lambda _s: "")  # stays in the queue (as a waiting session does)
    assert [w["label"] for w in fleet.read("a", where)["waiters"]] == ["first", "second"]
    held.release()
    assert lease.try_take("a", where, second, 30.0, lambda _s: "") == (False, "")  # not its turn
    assert lease.try_take("a", where, first, 30.0, lambda _s: "") == (True, "")
    for _ in range(2):
        fleet.record_run("b", 1, 0, "gone", where)
    told = []
    with pytest.raises(lease.LeaseTimeout, match="no rig in service: rig b is quarantined since"):
        lease.acquire_any([("b", 30.0)], where, second, wait_s=1,
                          skip=lambda s: fleet.quarantined(s["rig"], where), told=told.append)
    assert told and told[0].startswith("rig b is quarantined since")
    for p in (holder, first, second):
        p.close()


# --- hilci rigs ------------------------------------------------------------------------------------------
def test_hilci_rigs_shows_every_rig_and_releases_one(tmp_path, where):
    rigs(where, "a", "b")
    for _ in range(2):
        fleet.record_run("b", 1, 0, "servo at /dev/ttyUSB0 did not answer", where)
    fleet.record_health("a", "", "device plugin", where)
    me = lease.Presence(where, "pytest session of pid 1")
    held, _ = lease.acquire_any([("a", 60.0)], where, me, wait_s=1)
    try:
        proc = hilci(tmp_path, "rigs", "--lock-dir", str(tmp_path / "locks"))
        assert proc.returncode == 0, proc.stderr
        head, a_row, b_row, *notes = proc.stdout.splitlines()
        assert head.split()[:4] == ["rig", "state", "holder", "lease"]
        assert a_row.startswith("a ") and "in service" in a_row and f"pid {os.getpid()}@" in a_row
        assert "ok " in a_row and "(device plugin)" in a_row and "never" in a_row  # last health, last soak
        assert b_row.startswith("b ") and "QUARANTINED" in b_row and "2/2 in a row, 2 infra, 0 code, 2 runs" in b_row
        assert notes == ["b: quarantined: 2 consecutive infrastructure failures, the last: servo at /dev/ttyUSB0 "
                         "did not answer"]
        data = json.loads(hilci(tmp_path, "rigs", "--json", "--lock-dir", str(tmp_path / "locks")).stdout)
        a, b = data["rigs"]
        assert a["holder"]["pid"] == os.getpid() and a["holder"]["alive"] and 50 < a["lease_left_s"] <= 60
        assert a["last_soak"] is None and b["in_service"] is False and b["failures"]["consecutive"] == 2
        released = hilci(tmp_path, "rigs", "release", "b", "--lock-dir", str(tmp_path / "locks"))
        assert released.stdout.strip() == "rig b back in service: released by hilci rigs release"
        assert fleet.quarantined("b", where) == ""
        unknown = hilci(tmp_path, "rigs", "release", "zz", "--lock-dir", str(tmp_path / "locks"))
        assert unknown.returncode == 2
        assert unknown.stderr.strip() == (f"hilci: error: hilci rigs release zz: no such rig in {where} "
                                          "(known: a, b)")
    finally:
        held.release()
        me.close()
