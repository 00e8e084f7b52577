"""Cluster benchmarks on the real pieces: the rig device plugin (gRPC, against the kubelet stand-in), the HIL
device locks, and emulated rigs wired as real ones. Only the kubelet and Jenkins are stand-ins.

1. Device plugin reaction: a device goes silent (its emulator stops) -> the kubelet sees the rig Unhealthy;
   it comes back -> Healthy. Goal <= 10 s each, at the DaemonSet's probe interval (2 s).
2. A queue of builds over two boards, time-scaled (one HIL stage = HOLD_S real seconds): each build waits for its
   board's rig lock (Jenkins's lockable resource, FIFO, a stand-in), is allocated the rig by the device plugin
   (gRPC Allocate, refused while the rig is Unhealthy), takes the devices' locks as the HIL tests do and reads
   the rig's IMU and GNSS for the stage's duration. Reported: each rig's busy share while builds wait (goal
   >= 90%), double allocations found in the device-lock holds (goal 0), mean wait per build.
3. With --pods, the pod images and the build in pods (issue "The pods, for real"), each also a script of its own:
   benchmarks/images.py (image build time cold, and warm after a code-only change, with the steps the cache kept;
   image sizes) and benchmarks/pods.py (the pipeline in pods, `hilci pods`, against `hilci run` on the same
   machine: the ratio, goal <= 1.5). They need podman and the images `make images` builds, and take minutes
   (tens of them without --quick), so they run only when asked.

Run from the repository root: `.venv/bin/python benchmarks/cluster.py [--quick] [--pods]`. Prints `bench:` lines.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hilci.hil.drivers import driver_for  # noqa: E402
from hilci.hil.emulators.process import start  # noqa: E402
from hilci.hil.faults import parse_fault  # noqa: E402
from hilci.hil.locks import DeviceLock  # noqa: E402
from hilci.hil.rig import load_rig  # noqa: E402
from hilci.kube.deviceplugin.server import RigDevicePlugin  # noqa: E402
from hilci.kube.usage import Hold, busy_share, overlaps  # noqa: E402
from tests.kubelet_standin import KubeletStandIn, wire_emulated_rig  # noqa: E402

BOUND_S = 30.0  # no wait in this script is longer


class FifoLock:
    """Jenkins's lockable resource (a stand-in): one holder, waiters served in arrival order."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.queue: list[int] = []
        self.held = False

    def acquire(self, ticket: int) -> None:
        with self.cond:
            self.queue.append(ticket)
            ok = self.cond.wait_for(lambda: not self.held and self.queue[0] == ticket, timeout=600)
            if not ok:
                raise TimeoutError("lockable resource not granted within 600 s")
            self.queue.pop(0)
            self.held = True

    def release(self) -> None:
        with self.cond:
            self.held = False
            self.cond.notify_all()


def reaction(folder: Path, trials: int, interval_s: float) -> None:
    emus, sim, real = wire_emulated_rig(folder, "bench")
    sockets = folder / "dp"
    sockets.mkdir()
    kubelet = KubeletStandIn(sockets).start()
    plugin = RigDevicePlugin([real], sockets, folder / "state", interval_s=interval_s)
    runner = threading.Thread(target=plugin.run, daemon=True)
    runner.start()
    silent, back = [], []
    try:
        kubelet.wait_health("bench", "Healthy", BOUND_S)
        devices = list(emus.handles)
        for i in range(trials):
            name = devices[i % len(devices)]
            handle = emus.handles[name]
            unplug = i % 2 == 0  # unplugged (the port vanishes), or stalled (present, silent)
            t0 = time.monotonic()
            if unplug:
                handle.stop()
            else:
                handle.fault(parse_fault("stall"))
            silent.append(kubelet.wait_health("bench", "Unhealthy", BOUND_S) - t0)
            t1 = time.monotonic()
            if unplug:
                emus.handles[name] = start(load_rig(sim).devices[name], Path(handle.port))
            else:
                handle.command({"cmd": "clear"})
            back.append(kubelet.wait_health("bench", "Healthy", BOUND_S) - t1)
            time.sleep(interval_s * 0.37 * (i % 3))  # trials start at different phases of the probe loop
    finally:
        plugin.stop()
        runner.join(10)
        kubelet.stop()
        emus.stop()
    for what, times in (("silent -> Unhealthy", silent), ("recovered -> Healthy", back)):
        print(f"bench: device plugin {what}: mean {statistics.mean(times):.2f} s, max {max(times):.2f} s over "
              f"{len(times)} trials, unplugged and stalled devices in turn (probe every {interval_s:g} s; "
              "goal <= 10 s)")


def queue(folder: Path, builds: int, hold_s: float, interval_s: float) -> None:
    boards = {}
    for board in ("orin-nx", "agx-orin"):
        emus, _, real = wire_emulated_rig(folder / board, board)
        boards[board] = {"emus": emus, "rig": load_rig(real), "path": real, "jenkins": FifoLock()}
    sockets = folder / "dp"
    sockets.mkdir()
    kubelet = KubeletStandIn(sockets).start()
    plugin = RigDevicePlugin([b["path"] for b in boards.values()], sockets, folder / "state", interval_s=interval_s)
    runner = threading.Thread(target=plugin.run, daemon=True)
    runner.start()
    holds: dict[str, list[Hold]] = {b: [] for b in boards}  # device locks held (the real exclusion)
    leases: dict[str, list[Hold]] = {b: [] for b in boards}  # the rig leased to a build (Jenkins lock to release)
    waits, errors = [], []
    record = threading.Lock()

    def build(n: int, board: str, arrived: float) -> None:
        b = boards[board]
        b["jenkins"].acquire(n)
        leased = time.monotonic()
        try:
            kubelet.wait_health(board, "Healthy", BOUND_S)  # the kubelet allocates only healthy devices
            kubelet.allocate(board)
            locks = [DeviceLock(d.port, d.label, timeout=BOUND_S, folder=plugin.lock_dir)
                     for d in b["rig"].devices.values()]
            for lock in locks:
                lock.acquire()
            t_in = time.monotonic()
            try:
                drivers = [driver_for(d, d.port) for d in b["rig"].of_driver("imu") + b["rig"].of_driver("gnss")]
                for drv in drivers:
                    drv.open(timeout=5)
                try:
                    drivers[0].capture(max(0.0, hold_s - (time.monotonic() - t_in)))
                finally:
                    for drv in drivers:
                        drv.close()
            finally:
                t_out = time.monotonic()
                for lock in reversed(locks):
                    lock.release()
            with record:
                holds[board].append(Hold(f"build {n}", t_in, t_out))
                waits.append(leased - arrived)
        except Exception as exc:  # counted and shown; the queue goes on
            with record:
                errors.append(f"build {n} on {board}: {type(exc).__name__}: {exc}")
        finally:
            with record:
                leases[board].append(Hold(f"build {n}", leased, time.monotonic()))
            b["jenkins"].release()

    try:
        kubelet.wait(lambda k: all(k.health(b) == "Healthy" for b in boards), BOUND_S, "both rigs Healthy")
        t0 = time.monotonic()
        threads = [threading.Thread(target=build, args=(n, list(boards)[n % 2], t0), daemon=True)
                   for n in range(builds)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(builds * hold_s + 120)
    finally:
        plugin.stop()
        runner.join(10)
        kubelet.stop()
        for b in boards.values():
            b["emus"].stop()
    for board in boards:
        end = max(h.start for h in leases[board])  # the last build got the rig: no build waits after this
        share = busy_share(holds[board], t0, end) if end > t0 else 0.0
        leased = busy_share(leases[board], t0, end) if end > t0 else 0.0
        double = overlaps(holds[board], t0, time.monotonic())
        print(f"bench: queue rig {board}: busy {share:.1%} of the time builds waited (leased {leased:.1%}; "
              f"goal >= 90%), double allocations {len(double)} (goal 0), {len(holds[board])} builds ran")
    print(f"bench: queue {builds} builds over 2 boards, stage {hold_s:g} s: mean wait {statistics.mean(waits):.2f} s "
          f"per build (max {max(waits):.2f} s; a board's queue alone drains in {builds / 2 * hold_s:.1f} s), "
          f"{len(errors)} errors")
    for line in errors[:5]:
        print(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a smoke run: one trial, a short queue")
    parser.add_argument("--pods", action="store_true",
                        help="also the pod images and the build in pods (benchmarks/images.py, benchmarks/pods.py)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the plugin's health changes are the point, not its log
    folder = Path(tempfile.mkdtemp(prefix="hilci-bc-"))  # short: unix socket paths are limited to 107 bytes
    try:
        reaction(folder / "r", trials=2 if args.quick else 6, interval_s=0.5 if args.quick else 2.0)
        queue(folder / "q", builds=8 if args.quick else 40, hold_s=0.2 if args.quick else 0.6,
              interval_s=0.5 if args.quick else 2.0)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.pods:
        pods_and_images(args.quick)


def pods_and_images(quick: bool) -> None:
    """benchmarks/images.py, then benchmarks/pods.py, with the same --quick: their lines pass through as they come."""
    for script in ("images.py", "pods.py"):
        cmd = [sys.executable, str(ROOT / "benchmarks" / script), *(["--quick"] if quick else [])]
        code = subprocess.run(cmd, cwd=ROOT, timeout=7200).returncode
        if code != 0:
            raise SystemExit(f"bench: cluster: benchmarks/{script} failed (exit {code})")


if __name__ == "__main__":
    main()
