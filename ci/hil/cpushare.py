"""How much of the CPU the test process got while it was ready to run: the figure that shows a compute step
slowed by CPU contention.

The host's wake-up latency (`hostclock`) sees a busy host through a sleeper that the scheduler favours, and a
chain of run-queue waits; a compute step (preprocessing, an engine run on the CPU) that shares two cores with
six CPU-bound jobs is slowed differently: it runs in slices, each wait short, so neither figure moves while
the step takes twice as long. The kernel counts it exactly: per thread, `/proc/PID/task/TID/schedstat` holds
the time spent running and the time spent ready but waiting for a CPU (run-queue delay). Over a test's window,
the process's CPU share is run / (run + wait): 1.0 on a quiet host, about 0.3 beside six CPU hogs on two cores.

On an emulated rig a timing result that would have met its limit at the share it did not get (value x share
within the limit) is inconclusive: the computer, not the device. This scales the measured time by the
window's average share, so a sample slowed more than the average still fails (strict, never lenient).
Linux only; elsewhere no figure is taken and verdicts stay strict.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hilci.hil.hostclock import TIME_UNITS_MS
from hilci.results.measurements import Measurement

PREFIX = "host.cpu"
# Only a process that waited for the CPU at least a quarter as long as it ran counts as contended: on a quiet
# host a few percent of run-queue delay is normal and must not make a slow result inconclusive.
CONTENDED_SHARE = 0.8

Times = dict[int, tuple[int, int]]  # thread id -> (ns running, ns waiting for a CPU)


def sample(pid: int | None = None) -> Times:
    """Every thread's run and run-queue times now; {} where the kernel keeps no schedstat (not Linux)."""
    folder = f"/proc/{pid or os.getpid()}/task"
    out: Times = {}
    try:
        tids = os.listdir(folder)
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"{folder}/{tid}/schedstat", "rb") as f:
                run, wait = f.read(128).split()[:2]
            out[int(tid)] = (int(run), int(wait))
        except (OSError, ValueError):  # the thread ended meanwhile
            continue
    return out


@dataclass(frozen=True)
class CpuShare:
    """Run and run-queue time of one process over a window: its share of the CPU while it was ready to run."""

    run_ms: float
    wait_ms: float

    @property
    def share(self) -> float:
        ready = self.run_ms + self.wait_ms
        return self.run_ms / ready if ready > 0 else 1.0

    @property
    def contended(self) -> bool:
        return self.share < CONTENDED_SHARE

    def properties(self, prefix: str = PREFIX) -> list[tuple[str, str]]:
        return [(f"{prefix}.share", f"{self.share:.3f}"), (f"{prefix}.run_ms", f"{self.run_ms:.1f}"),
                (f"{prefix}.runqueue_ms", f"{self.wait_ms:.1f}")]

    def text(self) -> str:
        return (f"the test process had {self.share:.0%} of the CPU it was ready for (ran {self.run_ms:.0f} ms, "
                f"waited {self.wait_ms:.0f} ms for a CPU)")


def since(before: Times | None, after: Times | None = None) -> CpuShare | None:
    """The share between two samples of the same process (threads born in between count from zero, threads
    that ended are lost); None without a first sample."""
    if not before:
        return None
    after = sample() if after is None else after
    run = wait = 0
    for tid, (r, w) in after.items():
        r0, w0 = before.get(tid, (0, 0))
        run += max(0, r - r0)
        wait += max(0, w - w0)
    return CpuShare(run / 1e6, wait / 1e6)


def judge(m: Measurement, cpu: CpuShare | None) -> Measurement:
    """A failed time over its upper limit that the CPU it was denied explains (value x share within the limit,
    on a contended process) becomes inconclusive, with the figure that proves the CPU was taken."""
    if cpu is None or m.passed or not cpu.contended or m.high is None or m.unit not in TIME_UNITS_MS:
        return m
    at_full_cpu = m.value * cpu.share
    if at_full_cpu <= m.high:
        m.inconclusive = (f"{m.value:.3g} {m.unit} would be {at_full_cpu:.3g} {m.unit} with the CPU it waited "
                          f"for: {cpu.text()}")
    return m
