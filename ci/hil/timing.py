"""Timing verdicts beside the host's own latency: what the HIL plugin's `gate` does with a timing result.

Every test that gates a timing result (a latency, a jitter, a rate) gets the host's wake-up latency over its own
window as testcase properties (`host.wakeup.p50_ms`, `.p99_ms`, `.max_ms`), so a reader can tell the device from
the computer. On an emulated rig a timing failure the host explains becomes inconclusive (`hostclock.judge`)
unless the test injected a fault into the device (then the device is known to be at fault); real rigs keep
strict budgets. The inconclusive verdicts are tallied for the terminal summary.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from hilci.hil import cpushare
from hilci.hil.cpushare import CpuShare
from hilci.hil.hostclock import HostClock, HostLatency, is_timing, judge
from hilci.results.measurements import INCONCLUSIVE, Measurement


@dataclass
class TimingVerdicts:
    """The session's host clock, whether its verdicts may be lenient, and the inconclusive ones so far."""

    clock: HostClock | None
    emulated: bool
    inconclusive: list[tuple[str, str]] = field(default_factory=list)  # (test id, measurement message)

    @staticmethod
    def now() -> int:
        return time.perf_counter_ns()

    def weigh(self, nodeid: str, since_ns: int, measurements: Iterable[Measurement],
              lenient: bool = True, cpu: CpuShare | None = None) -> list[tuple[str, str]]:
        """Judge the timing results of one test against the host over its window (its wake-up latency, and
        `cpu`, the test process's CPU share); the properties to add. `lenient=False` (a test with an injected
        fault) shows the host's figures but keeps every verdict."""
        timing = [m for m in measurements if is_timing(m)]
        if not timing:
            return []
        host = self.clock.window(since_ns) if self.clock is not None else None
        if self.emulated and lenient:
            for m in timing:
                judge(m, host)
                cpushare.judge(m, cpu)
                if m.verdict == INCONCLUSIVE:
                    self.inconclusive.append((nodeid, m.message()))
        return (host.properties() if host is not None else []) + (cpu.properties() if cpu is not None else [])

    def session(self) -> HostLatency | None:
        return self.clock.session() if self.clock is not None else None

    def summary(self) -> list[str]:
        """Lines for the end of a pytest session: the host's figure and each inconclusive verdict."""
        lines = []
        host = self.session()
        if host is not None:
            lines.append(f"hil: {host.text()} during the session")
        if self.inconclusive:
            lines.append(f"hil: {len(self.inconclusive)} inconclusive timing verdict(s): the host was too late "
                         "or too busy to judge the emulated device (not counted as failures)")
            lines += [f"  {nodeid}: {message}" for nodeid, message in self.inconclusive]
        return lines
