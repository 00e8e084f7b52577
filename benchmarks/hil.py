"""HIL benchmarks: timing fidelity, IMU headroom at 1 kHz, and xdist parallelism over emulated rigs.

Run from the repository root: `.venv/bin/python benchmarks/hil.py [--quick]`. Prints `bench:` lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hilci.hil.drivers import driver_for  # noqa: E402
from hilci.hil.emulators.process import RigEmulators  # noqa: E402
from hilci.hil.rig import load_rig  # noqa: E402
from hilci.results import junit  # noqa: E402
from hilci.results.measurements import (  # noqa: E402
    Stats,  # noqa: E402
    intervals_ms,
    rate_hz,
)


def write_rig(folder: Path, name: str, devices: dict, **extra) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "emulate": True, **extra, "devices": devices}))
    return path


SIM_DEVICES = yaml.safe_load((ROOT / "hil_tests/rigs/sim.yaml").read_text())["devices"]


def imu_rig(folder: Path, name: str, rate: float, jitter_ms: float):
    path = write_rig(folder, name, {"imu": {"driver": "imu", "baud": 921600, "rate_hz": rate,
                                            "emulator": {"jitter_ms": jitter_ms}}})
    return load_rig(path)


def fidelity(folder: Path, seconds: float) -> None:
    rig = imu_rig(folder, "fidelity", 200, 0.5)
    with RigEmulators(rig) as emus:
        handle = emus.handles["imu"]
        driver = driver_for(rig.devices["imu"], handle.port).open()
        cap = driver.capture(seconds)
        driver.close()
        record = handle.command({"cmd": "stats", "since_ns": cap.arrivals_ns[1] - 2_000_000,
                                 "until_ns": cap.arrivals_ns[-1]})
    measured = Stats.of(intervals_ms(cap.arrivals_ns[1:]))
    measured_hz = rate_hz(cap.arrivals_ns)
    rate_err = abs(measured_hz - record["rate_hz"]) / record["rate_hz"] * 100
    p99_err = abs(measured.p99 - record["interval_p99_ms"])
    print(f"bench: fidelity rate: {measured_hz:.2f} Hz measured vs {record['rate_hz']:.2f} Hz emulator record "
          f"(diff {rate_err:.3f}%, limit 0.5%, {'ok' if rate_err <= 0.5 else 'OVER'})")
    print(f"bench: fidelity p99 inter-arrival: {measured.p99:.3f} ms measured vs {record['interval_p99_ms']:.3f} ms "
          f"emulator record (diff {p99_err:.3f} ms, limit 0.5 ms, {'ok' if p99_err <= 0.5 else 'OVER'}; "
          f"injected jitter 0.5 ms sigma, {len(cap.arrivals_ns)} samples)")


def headroom(folder: Path, seconds: float) -> None:
    other = write_rig(folder, "other", {k: v for k, v in SIM_DEVICES.items() if k != "servo"})
    background = subprocess.Popen([sys.executable, "-m", "pytest", "hil_tests", "--rig", str(other), "-q",
                                   "-p", "no:cacheprovider", "-m", "sensor"], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        rig = imu_rig(folder, "fast", 1000, 0.05)
        rig = dataclasses.replace(rig, devices={"imu": rig.devices["imu"].with_settings(stall_timeout_s=1.0)})
        with RigEmulators(rig) as emus:
            handle = emus.handles["imu"]
            driver = driver_for(rig.devices["imu"], handle.port).open()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            cap = driver.capture(seconds)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            driver.close()
            dropped = handle.command({"cmd": "stats"})["dropped"]
    finally:
        background.terminate()
        background.wait(30)
    print(f"bench: headroom imu 1 kHz for {seconds:g} s beside another rig: {rate_hz(cap.arrivals_ns):.1f} Hz, "
          f"{cap.drops} drops (seq gaps), {dropped} emulator writes lost, {cap.bad_data} bad, "
          f"reader CPU {cpu / wall * 100:.1f}% of one core")


def parallelism(folder: Path, n: int) -> None:
    rigs = [write_rig(folder, f"par{i}", SIM_DEVICES, sensor_window_s=1.0) for i in range(n)]
    base = [sys.executable, "-m", "pytest", "hil_tests", "-q", "-p", "no:cacheprovider", "-m", "sensor or actuator"]
    t0 = time.perf_counter()
    for path in rigs:
        subprocess.run([*base, "--rig", str(path)], cwd=ROOT, capture_output=True, timeout=600)
    serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    args = [a for p in rigs for a in ("--rig", str(p))]
    xml = folder / "parallel.xml"
    subprocess.run([*base, *args, "-n", str(n), f"--junitxml={xml}"], cwd=ROOT, capture_output=True, text=True,
                   timeout=600)
    parallel = time.perf_counter() - t0
    failed = [c for c in junit.read_cases(xml) if c.status in (junit.FAILED, junit.ERROR)] if xml.exists() else []
    for case in failed:  # the whole first line of the message: which device, which check, which figure
        print(f"bench: parallel run failure: {case.name}: {case.message.splitlines()[0][:300]}")
    print(f"bench: parallelism {n} emulated rigs: -n {n} {parallel:.1f} s vs one after another {serial:.1f} s "
          f"(ratio {parallel / serial:.2f}, target <= 0.4; {len(failed)} tests failed in the parallel run)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter windows (a smoke run)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fidelity(folder, 2.0 if args.quick else 5.0)
        headroom(folder, 3.0 if args.quick else 10.0)
        parallelism(folder, 4)


if __name__ == "__main__":
    main()
