"""Reliability benchmarks (issue 8): faults blamed on the right test, abort through `hilci stage hil`, and
verdicts on a busy host. Prints `bench:` lines; asserts nothing.

1. Fault matrix: every fault kind on every device of the sim rig, injected on one test of that device's suite:
   diagnosed (that test fails, none before it) / total, and recovered (every later test passes) / total.
2. Abort: SIGTERM to `hilci stage hil` while a test holds a servo torqued: the time until the servo's emulator
   reports torque off (goal <= 0.5 s), and the finished testcases kept in the stage JUnit / finished. Then
   SIGKILL (no clean-up of its own) to a test process holding torque: the time until the rig guard
   (`hilci rig-guard`) has made the servo safe (goal <= 1 s).
3. Busy host: the HIL suites on the sim rig beside CPU-bound processes (six by default, on whatever cores the
   host has): runs with a failure no fault caused (goal 0), inconclusive verdicts, the host's wake-up latency;
   then each fault kind injected under the same load, still caught.
4. Fleet: four emulated rigs (one with a flaky cable that drops out once in every build it runs, one that dies a
   quarter of the way in) under a stream of builds, each a pytest session that picks its rig by lease
   (`--hil-pick`, the rigs offered in a rotating order as a scheduler would); every fifth build carries a code
   bug. Printed: code failures blamed on infrastructure (goal 0), infrastructure failures that reached a
   developer as red (goal 0: retried, or "not built" and then quarantined), builds lost as "not built", the time
   from the rig's death to its quarantine, and the builds that still ran on the healthy rigs.

Run from the repository root: `.venv/bin/python benchmarks/reliability.py [--quick] [--runs N] [--hogs N]
[--fleet-only] [--builds N]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hilci.hil.faults import KINDS  # noqa: E402
from hilci.results import junit  # noqa: E402
from hilci.results.measurements import INCONCLUSIVE  # noqa: E402
from tests.scratch import child_env  # noqa: E402
from tests.test_abort import hold_env, make_hold_project  # noqa: E402
from tests.test_rig_guard import SERVO, kill_holder  # noqa: E402

SIM = ROOT / "hil_tests" / "rigs" / "sim.yaml"
SUITES = {"imu": "test_sensors.py::TestImu", "gnss": "test_sensors.py::TestGnss",
          "camera": "test_sensors.py::TestCamera", "servo": "test_actuators.py::TestServo"}
# the test whose job it is to catch each fault, per device
SENSOR_TARGET = {"disconnect": "test_rate", "stall": "test_rate", "corrupt": "test_data_valid",
                 "garbage": "test_data_valid", "rate_drop": "test_rate", "reboot": "test_data_valid",
                 "hw_error": "test_data_valid"}
SERVO_TARGET = {"disconnect": "test_answers", "stall": "test_answers", "corrupt": "test_answers",
                "garbage": "test_answers", "rate_drop": "test_roundtrip", "reboot": "test_reaches_positions",
                "hw_error": "test_hardware_error_clear"}
PARAMS = {("servo", "rate_drop"): ":delay_ms=40",  # a servo answering 40 ms late is broken, not busy
          ("servo", "corrupt"): ":fraction=1",  # test_answers asks once per id: every answer hit
          ("servo", "garbage"): ":fraction=1"}
LOAD_FAULTS = {"disconnect": "gnss", "stall": "camera", "corrupt": "imu", "garbage": "gnss",
               "rate_drop": "imu", "reboot": "camera", "hw_error": "servo"}


def target(device: str, kind: str) -> str:
    return (SERVO_TARGET if device == "servo" else SENSOR_TARGET)[kind]


def pytest_run(folder: Path, args: list[str], timeout: float = 600) -> tuple[int, list[junit.CaseRecord], str]:
    """pytest hil_tests ARGS on the sim rig; exit code, testcases (in order), output."""
    xml = folder / f"run-{time.monotonic_ns()}.xml"
    cmd = [sys.executable, "-m", "pytest", *args, "--rig", str(SIM), f"--junitxml={xml}", "-q",
           "-p", "no:cacheprovider", "-o", "junit_family=xunit2"]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=timeout)
        code, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        code, out = -1, "timed out"
    cases = junit.read_cases(xml) if xml.exists() else []
    xml.unlink(missing_ok=True)
    return code, cases, out


def judge_fault(cases: list[junit.CaseRecord], name: str) -> tuple[bool, bool]:
    """(diagnosed: the target failed and nothing before it, recovered: everything after it passed)."""
    names = [c.name.partition("[")[0] for c in cases]
    if name not in names:
        return False, False
    at = names.index(name)
    bad = [c.status in (junit.FAILED, junit.ERROR) for c in cases]
    return bad[at] and not any(bad[:at]), not any(bad[at + 1:])


def fault_matrix(folder: Path, devices: list[str], kinds: list[str]) -> None:
    diagnosed = recovered = total = refused = 0
    misses = []
    for device in devices:
        for kind in kinds:
            name = target(device, kind)
            spec = f"{device}:{kind}{PARAMS.get((device, kind), '')}@{name}"
            code, cases, out = pytest_run(folder, [f"hil_tests/{SUITES[device]}", "--hil-fault", spec])
            if code in (3, 4) and not cases:  # a usage error: this fault means nothing for this device
                refused += 1
                continue
            total += 1
            d, r = judge_fault(cases, name)
            diagnosed += d
            recovered += r
            if not (d and r):
                failed = [c.name for c in cases if c.status in (junit.FAILED, junit.ERROR)]
                misses.append(f"{spec} -> failed {failed or 'none'}")
    print(f"bench: fault matrix: diagnosed by the right test {diagnosed}/{total}, later tests recovered "
          f"{recovered}/{total} (goal 100%/100%; {refused} device/fault pairs refused as meaningless)")
    for miss in misses:
        print(f"bench: fault matrix miss: {miss}")


def abort_once(run_dir: Path) -> tuple[float, int]:
    """One abort: seconds from SIGTERM to torque off on the emulator, and finished testcases kept (of 1)."""
    proj, handle = make_hold_project(run_dir)
    try:
        def torque() -> int:
            return handle.command({"cmd": "state"})["motors"]["1"]["torque"]

        proc = subprocess.Popen([sys.executable, "-m", "hilci", "stage", "hil", "--rig", str(proj / "rig.yaml")],
                                cwd=proj, env=hold_env(run_dir, proj), stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not ((run_dir / "holding").exists() and torque() == 1):
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("bench: abort: the held test never started")
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        t0 = time.perf_counter()
        while torque() == 1 and time.perf_counter() - t0 < 30:
            time.sleep(0.002)
        seconds = time.perf_counter() - t0
        proc.wait(120)
        cases = junit.read_cases(proj / "reports" / "junit" / "hil.xml")
        return seconds, sum(1 for c in cases if c.name.startswith("test_first") and c.status == junit.PASSED)
    finally:
        handle.stop()


def abort(folder: Path, runs: int) -> None:
    times, kept = [], 0
    for i in range(runs):
        (folder / f"abort{i}").mkdir()
        seconds, k = abort_once(folder / f"abort{i}")
        times.append(seconds)
        kept += k
    print(f"bench: abort: torque off {max(times):.3f} s after SIGTERM to hilci stage hil (worst of {runs}; "
          f"median {sorted(times)[len(times) // 2]:.3f} s; goal <= 0.5 s); finished testcases kept "
          f"{kept}/{runs}")


def holder_killed(folder: Path, runs: int) -> None:
    """SIGKILL to a test process holding a servo's torque, with the rig guard beside it: time until torque off."""
    import yaml

    from hilci.hil.emulators.process import start
    from hilci.hil.rig import load_rig

    times, recorded = [], 0
    for i in range(runs):
        run = folder / f"killed{i}"
        run.mkdir()
        (run / "emu.yaml").write_text(yaml.safe_dump({"name": "bench", "emulate": True, "devices": {"servo": SERVO}}))
        handle = start(load_rig(run / "emu.yaml").devices["servo"], run / "servo-port")
        try:
            seconds, line, _ = kill_holder(handle, run)
        finally:
            handle.stop()
        times.append(seconds)
        recorded += "died without a clean release" in line
    print(f"bench: holder killed: torque off {max(times):.3f} s after SIGKILL to the test process (worst of {runs}; "
          f"median {sorted(times)[len(times) // 2]:.3f} s; goal <= 1 s), by the rig guard; recorded why "
          f"{recorded}/{runs}")


@contextlib.contextmanager
def cpu_hogs(n: int) -> Iterator[list[int]]:
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
             for _ in range(n)]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait(10)


def suite_args() -> list[str]:
    """The HIL suites; the latency suite only where the pipeline has built an engine."""
    engine = ROOT / "artifacts" / "convert" / "engine.onnx"
    return ["hil_tests"] if engine.exists() else ["hil_tests", "-m", "sensor or actuator"]


def busy_host(folder: Path, runs: int, hogs: int, args: list[str], kinds: list[str]) -> None:
    failed_runs, inconclusive, host_p99, cpu_explained, shares = 0, 0, [], 0, []
    problems = []
    with cpu_hogs(hogs):
        for _ in range(runs):
            code, cases, out = pytest_run(folder, args)
            bad = [c for c in cases if c.status in (junit.FAILED, junit.ERROR)]
            if code != 0 or bad:
                failed_runs += 1
                problems.append(", ".join(f"{c.name}: {c.message[:90]}" for c in bad[:3]) or out[-200:])
            inconclusive += sum(1 for c in cases for m in c.measurements.values()
                                if m.get("verdict") == INCONCLUSIVE)
            # the verdicts only the test process's CPU share explained: failures before hilci.hil.cpushare
            cpu_explained += sum(1 for c in cases for m in c.measurements.values()
                                 if m.get("verdict") == INCONCLUSIVE and "CPU it was ready for" in m.get("inconclusive", ""))
            shares += [float(dict(c.properties)["host.cpu.share"]) for c in cases
                       if "host.cpu.share" in dict(c.properties)]
            for c in cases:
                p99 = dict(c.properties).get("host.wakeup.p99_ms")
                if p99:
                    host_p99.append(float(p99))
        caught, missed = 0, []
        for kind in kinds:
            device = LOAD_FAULTS[kind]
            name = target(device, kind)
            spec = f"{device}:{kind}{PARAMS.get((device, kind), '')}@{name}"
            _, cases, _ = pytest_run(folder, [f"hil_tests/{SUITES[device]}", "--hil-fault", spec])
            if judge_fault(cases, name)[0]:
                caught += 1
            else:
                missed.append(f"{spec} -> failed {[c.name for c in cases if c.status in (junit.FAILED, junit.ERROR)]}")
    host = f"host wake-up p99 per test: median {sorted(host_p99)[len(host_p99) // 2]:.2f} ms, worst " \
           f"{max(host_p99):.2f} ms" if host_p99 else "host wake-up latency not recorded"
    print(f"bench: busy host ({hogs} CPU-bound processes on {os.cpu_count()} cores): runs with a failure no "
          f"fault caused {failed_runs}/{runs} (goal 0); inconclusive timing verdicts {inconclusive} "
          f"({cpu_explained} explained by the test process's CPU share, median share "
          f"{sorted(shares)[len(shares) // 2] if shares else float('nan'):.2f}); {host}")
    for problem in problems:
        print(f"bench: busy host failure: {problem}")
    print(f"bench: busy host, fault injected under the same load: caught {caught}/{len(kinds)}")
    for miss in missed:
        print(f"bench: busy host, fault missed under load: {miss}")


FLEET_SUITE = """
import os
from pathlib import Path

import pytest

from hilci.hil.emulators.process import send
from hilci.hil.plugin.fixtures import KEY

pytestmark = pytest.mark.sensor


def test_a_rig(request):  # which rig this build picked (before any device is opened)
    Path(os.environ["BUILD_OUT"]).write_text(request.config.stash[KEY].rigs[0].name)


def test_fix(gnss, request):
    hil = request.config.stash[KEY]
    rig = hil.rigs[0].name
    dropped = Path(os.environ["BUILD_OUT"] + ".dropped")
    if rig == "flaky" and not dropped.exists():  # the cable drops out once in every build on this rig
        dropped.write_text("1")
        send(hil.emulation.controls["flaky:gnss"], {"cmd": "fault", "kind": "disconnect", "duration_s": 0.5})
    cap = gnss.capture(0.5)
    if cap.error:
        pytest.fail(cap.error, pytrace=False)
    assert cap.sentences > 0


def test_code(gnss):
    assert not os.environ.get("BUG"), "a bug in our code"
"""
FLEET_RIGS = ("steady-1", "flaky", "dies", "steady-2")


def fleet_rig(folder: Path, name: str, dead: bool = False) -> Path:
    import yaml

    gnss = {"driver": "gnss", "baud": 115200}
    if dead:  # silent from power-on, and no switch that could bring it back
        gnss["faults"] = [{"kind": "disconnect", "after_s": 0, "duration_s": 3600}]
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "emulate": True, "health_timeout_s": 1.0, "lock_timeout_s": 5,
                                    "quarantine": {"after": 2, "max_share": 0.5}, "devices": {"gnss": gnss}}))
    return path


def fleet(folder: Path, builds: int) -> None:
    from hilci.hil import fleet as fleet_state

    folder = folder / "fleet"
    folder.mkdir()
    (folder / "test_fleet_build.py").write_text(FLEET_SUITE)
    paths = [fleet_rig(folder, n) for n in FLEET_RIGS]
    locks = folder / "locks"
    dies_at = max(1, builds // 4)
    death = None
    rows = []
    for i in range(builds):
        if i == dies_at:
            fleet_rig(folder, "dies", dead=True)
            death = time.time()
        bug = i % 5 == 4
        order = paths[i % 4:] + paths[:i % 4]
        out = folder / f"build-{i}.rig"
        xml = folder / f"build-{i}.xml"
        env = child_env(HILCI_LOCK_DIR=str(locks), BUILD_OUT=str(out), **({"BUG": "1"} if bug else {}))
        cmd = [sys.executable, "-m", "pytest", str(folder / "test_fleet_build.py"), "--hil-pick",
               *[a for p in order for a in ("--rig", str(p))], f"--junitxml={xml}", "-q", "-p", "no:cacheprovider",
               "-o", "junit_family=xunit2", "--rootdir", str(folder), "-W", "ignore"]
        try:
            subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pass
        cases = junit.read_cases(xml) if xml.exists() else []
        code = [c for c in cases if c.status in (junit.FAILED, junit.ERROR) and c.failure_class != junit.INFRASTRUCTURE]
        infra = [c for c in cases if c.status in (junit.FAILED, junit.ERROR) and c.failure_class == junit.INFRASTRUCTURE]
        retried = [c for c in cases if c.retried and c.status == junit.PASSED]
        rig = out.read_text() if out.exists() else "?"
        rows.append({"build": i + 1, "bug": bug, "rig": rig, "code": code, "infra": infra, "retried": retried, "cases": cases,
                     "after_death": death is not None})
    state = fleet_state.read("dies", fleet_state.folder(locks)) or {}
    q = state.get("quarantined")
    bug_builds = [r for r in rows if r["bug"]]
    not_built = [r for r in rows if r["infra"] and not r["code"]]
    seen = [r for r in bug_builds if any(c.name.startswith("test_code") for c in r["code"])]
    unseen = [r for r in bug_builds if r in not_built]  # the rig was dead: nothing ran, the build says "not built"
    blamed = len(bug_builds) - len(seen) - len(unseen)
    red_for_infra = sum(1 for r in rows if not r["bug"] and r["code"])
    after = [r for r in rows if r["after_death"]]
    healthy = [r for r in after if r["rig"] not in ("dies", "?")]
    print(f"bench: fleet: {builds} builds on 4 emulated rigs (flaky cable on 'flaky', 'dies' dies before build "
          f"{dies_at + 1}; every fifth build has a code bug)")
    print(f"bench: fleet: code failures blamed on infrastructure: {blamed} of {len(bug_builds)} builds with a bug "
          f"(goal 0); bug caught as a code failure: {len(seen)}; build not built on the dead rig (bug not run): "
          f"{len(unseen)}")
    print(f"bench: fleet: infrastructure failures that reached a developer as red: {red_for_infra} (goal 0); "
          f"flaky-cable dropouts retried and passed: {sum(len(r['retried']) for r in rows)}")
    print(f"bench: fleet: builds not built (only infrastructure failed, exit 3): {len(not_built)} "
          f"({', '.join(sorted({r['rig'] for r in not_built})) or 'none'})")
    for r in not_built:
        first = r["infra"][0]
        why = f"; {first.retried}" if first.retried else ""
        print(f"bench: fleet: not built: build {r['build']} on {r['rig']}: {first.name}: {first.message[:160]}"
              f"{why[:200]}")
    if q and death is not None:
        lost = sum(1 for r in after if r["rig"] == "dies")
        print(f"bench: fleet: rig death to quarantine: {q['since'] - death:.1f} s, {lost} build(s) on it in between "
              f"(quarantine after 2)")
    else:
        print("bench: fleet: rig death to quarantine: never quarantined")
    print(f"bench: fleet: builds that still ran on the healthy rigs after the death: {len(healthy)} of {len(after)}, "
          f"passed {sum(1 for r in healthy if not r['code'] and not r['infra'])} (red for a bug: "
          f"{sum(1 for r in healthy if r['bug'])})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one case of each benchmark (a smoke run)")
    parser.add_argument("--runs", type=int, default=10, help="busy-host runs of the HIL suites (default 10)")
    parser.add_argument("--hogs", type=int, default=6, help="CPU-bound processes beside them (default 6)")
    parser.add_argument("--builds", type=int, default=0, help="fleet builds (default 40, --quick 8)")
    parser.add_argument("--fleet-only", action="store_true", help="only the fleet benchmark")
    args = parser.parse_args()
    builds = args.builds or (8 if args.quick else 40)
    with tempfile.TemporaryDirectory(prefix="hilci-reliability-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        if args.fleet_only:
            fleet(folder, builds)
        elif args.quick:
            fault_matrix(folder, ["imu"], ["stall"])
            abort(folder, 1)
            holder_killed(folder, 1)
            busy_host(folder, 1, 2, ["hil_tests/test_sensors.py::TestImu::test_rate"], ["stall"])
            fleet(folder, builds)
        else:
            fault_matrix(folder, list(SUITES), list(KINDS))
            abort(folder, 5)
            holder_killed(folder, 5)
            busy_host(folder, args.runs, args.hogs, suite_args(), list(KINDS))
            fleet(folder, builds)
        print(f"bench: wall time: reliability benchmarks took {time.perf_counter() - start:.0f} s"
              f"{' (quick)' if args.quick else ''}")


if __name__ == "__main__":
    main()
