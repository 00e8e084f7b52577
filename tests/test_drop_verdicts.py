"""A busy host makes a drop check inconclusive, never a failure: drops of a stream without sequence numbers
(NMEA) are inferred from gaps in its timing, so a reader the host woke late sees a gap the device never made.
The e2e warm run once failed on "gnss drops 1 above limit 0" under load; a gap the host's own worst delay
explains is now inconclusive on an emulated rig, a longer one (a real stall) still fails, and a real rig is
always strict."""

from __future__ import annotations

import yaml

from hilci.hil import checks
from hilci.hil.hostclock import HostLatency
from hilci.hil.rig import load_rig
from hilci.hil.timing import TimingVerdicts
from hilci.results.measurements import FAIL, INCONCLUSIVE

PERIOD_NS = 100_000_000  # a 10 Hz GNSS


class LateHost:
    """A host clock whose every window reports a worst delay of `worst_ms` (a stall while the emulator streamed)."""

    def __init__(self, worst_ms: float):
        self.worst_ms = worst_ms

    def window(self, _since_ns: int) -> HostLatency:
        return HostLatency(n=100, p50_ms=0.1, p99_ms=self.worst_ms / 2, max_ms=self.worst_ms)

    def session(self):
        return None


def gnss(tmp_path):
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump({"name": "sim", "emulate": True, "devices": {
        "gnss": {"driver": "gnss", "baud": 115200, "rate_hz": 10}}}))
    return load_rig(rig).devices["gnss"]


def arrivals_with_gap(gap_ms: float) -> list[int]:
    """Ten epochs on time, then one interval `gap_ms` long (the reader was not woken), then ten more."""
    first = [i * PERIOD_NS for i in range(10)]
    resumed = first[-1] + int(gap_ms * 1e6)
    return first + [resumed + i * PERIOD_NS for i in range(10)]


def judged(tmp_path, gap_ms: float, host_worst_ms: float, emulated: bool = True):
    drops = checks.gap_drops(gnss(tmp_path), arrivals_with_gap(gap_ms))
    TimingVerdicts(LateHost(host_worst_ms), emulated).weigh("test_no_drops[gnss]", 0, [drops])
    return drops


def test_a_gap_the_late_host_explains_is_inconclusive(tmp_path):
    drops = judged(tmp_path, gap_ms=230, host_worst_ms=180)  # one epoch "lost" while the host stalled 180 ms
    assert drops.value == 1 and drops.verdict == INCONCLUSIVE, drops.message()
    assert "host" in drops.message()


def test_a_stall_longer_than_the_host_delay_still_fails(tmp_path):
    drops = judged(tmp_path, gap_ms=2100, host_worst_ms=180)  # 20 epochs missing: the device, not the host
    assert drops.value == 20 and drops.verdict == FAIL


def test_a_real_rig_keeps_a_strict_drop_count(tmp_path):
    drops = judged(tmp_path, gap_ms=230, host_worst_ms=180, emulated=False)
    assert drops.verdict == FAIL


def test_no_gap_no_drop(tmp_path):
    drops = checks.gap_drops(gnss(tmp_path), arrivals_with_gap(100))
    assert drops.value == 0 and drops.passed
