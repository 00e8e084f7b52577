"""A soak's verdict from its trends, not from one run: what `hilci soak` judges after looping the HIL suites.

Inputs: every round's measurements (`rounds`: one dict per test run, written by `hilci.hil.plugin.soak`), the
test process tree's RSS over time and tegrastats samples. Each trend is a robust straight-line fit (Theil-Sen:
the median of the pairwise slopes, so one slow round on a busy host does not make a trend), stated as the change
over the whole soak relative to where it started, so a gate means the same on a 10 s test soak and an 8 h one:

    soak.<latency>.drift     %   a latency's fitted change over the soak (gate: <= latency_drift_pct)
    soak.<rate>.drift        %   a rate's fitted change (gate: within ±rate_drift_pct)
    soak.memory.growth       MB  the test processes' RSS, fitted change after the first round (memory_growth_mb)
    soak.gpu.clock_under_load %  the GPU clock (10th percentile while GR3D >= gpu_load_pct) against its maximum
    soak.temperature.max     C   the hottest sensor (gate: <= temp_limit_c - temp_margin_c)
    soak.pass_rate           %   test runs that passed (gate: >= min_pass_rate_pct)
A figure that could not be measured (no tegrastats, too few rounds) is `inconclusive` with why, never a pass.
"""

from __future__ import annotations

import fnmatch
import math
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hilci.hil.tegrastats import Sample
from hilci.pipeline.sections import SoakSettings, parse_duration  # noqa: F401 - parse_duration: re-exported
from hilci.results.measurements import Measurement

UNITS = {"ms": "latency", "us": "latency", "s": "latency", "Hz": "rate"}


def theil_sen(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(slope, intercept) of the median pairwise slope; (0, median) for fewer than two distinct times."""
    slopes = [(y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(points) for x2, y2 in points[i + 1:] if x2 != x1]
    if not slopes:
        return 0.0, statistics.median(y for _, y in points) if points else 0.0
    slope = statistics.median(slopes)
    return slope, statistics.median(y - slope * x for x, y in points)


def drift(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(change, change as % of the fitted start) from the first to the last time (None: not enough to say)."""
    if len(points) < 3:
        return None
    slope, intercept = theil_sen(points)
    t0, t1 = points[0][0], points[-1][0]
    start = intercept + slope * t0
    if start <= 0:
        return None
    return slope * (t1 - t0), slope * (t1 - t0) / start * 100.0


@dataclass
class Inputs:
    """What a soak collected: its rounds (test runs), RSS samples (t, MB) and tegrastats samples."""

    rounds: list[dict] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)
    tegra: list[Sample] = field(default_factory=list)
    tegra_problem: str = ""
    warm_until: float = 0.0  # RSS before this (the first round) is warm-up: imports, engine load
    until: float = float("inf")  # and after the last test run, teardown: emulators stopping


def _series(rounds: list[dict]) -> dict[str, tuple[str, list[tuple[float, float]]]]:
    """measurement name -> (unit, [(t, value)]) over the rounds; a distribution is followed by its median."""
    out: dict[str, tuple[str, list[tuple[float, float]]]] = {}
    for run in rounds:
        for name, fields in (run.get("measurements") or {}).items():
            unit = str(fields.get("unit", ""))
            raw = fields.get("p50", fields.get("value"))
            try:
                value = float(raw)
            except (TypeError, ValueError):
                continue
            out.setdefault(name, (unit, []))[1].append((float(run["t"]), value))
    return out


def judge(inputs: Inputs, cfg: SoakSettings) -> list[Measurement]:
    """Every soak figure as a gated Measurement (inconclusive with why where it could not be measured)."""
    out: list[Measurement] = []
    for name, (unit, points) in sorted(_series(inputs.rounds).items()):
        kind = UNITS.get(unit)
        if kind is None or not any(fnmatch.fnmatchcase(name, g) for g in cfg.trends):
            continue
        d = drift(points)
        m = Measurement(f"soak.{name}.drift", d[1] if d is not None else float("nan"), "%",
                        nominal=f"{name} ({unit}) over {len(points)} rounds")
        if d is not None:
            m.nominal += f", {d[0]:+.3g} {unit}"
        if kind == "latency":
            floor = cfg.latency_floor_ms / {"ms": 1, "us": 1e-3, "s": 1e3}[unit]
            if d is not None and abs(d[0]) < floor:  # too small to be a trend, however large relative to ~0
                m.nominal += f", under the {cfg.latency_floor_ms:g} ms floor"
            else:
                m.high = cfg.latency_drift_pct
        else:
            m.low, m.high = -cfg.rate_drift_pct, cfg.rate_drift_pct
        if d is None:
            m.inconclusive = f"{len(points)} rounds: too few for a trend (3 needed)"
        out.append(m)
    rss = [(t, mb) for t, mb in inputs.rss if inputs.warm_until <= t <= inputs.until]
    if len(rss) >= 3:
        slope, _ = theil_sen(rss)
        growth = slope * (rss[-1][0] - rss[0][0])
        out.append(Measurement("soak.memory.growth", growth, "MB", high=cfg.memory_growth_mb,
                               nominal=f"test processes' RSS {rss[0][1]:.0f} -> {rss[-1][1]:.0f} MB"))
    else:
        out.append(Measurement("soak.memory.growth", float("nan"), "MB", high=cfg.memory_growth_mb,
                               inconclusive=f"{len(rss)} RSS samples after the first round: too few"))
    out += _board(inputs, cfg)
    runs = [r for r in inputs.rounds if r.get("outcome") in ("passed", "failed")]
    rate = 100.0 * sum(r["outcome"] == "passed" for r in runs) / len(runs) if runs else float("nan")
    out.append(Measurement("soak.pass_rate", rate, "%", low=cfg.min_pass_rate_pct,
                           nominal=f"{len(runs)} test runs", inconclusive="" if runs else "no test ran"))
    return out


def _board(inputs: Inputs, cfg: SoakSettings) -> list[Measurement]:
    """GPU clock under load and the hottest temperature, from tegrastats."""
    why = inputs.tegra_problem or ("tegrastats printed no line" if not inputs.tegra else "")
    clocks = [s.gpu_mhz for s in inputs.tegra if s.gpu_mhz is not None]
    loaded = sorted(s.gpu_mhz for s in inputs.tegra
                    if s.gpu_mhz is not None and (s.gpu_load_pct or 0) >= cfg.gpu_load_pct)
    top = cfg.gpu_max_mhz or (max(clocks) if clocks else None)
    if loaded and top:
        p10 = loaded[int(0.1 * (len(loaded) - 1))]
        clock = Measurement("soak.gpu.clock_under_load", 100.0 * p10 / top, "%", low=cfg.min_gpu_clock_pct,
                            nominal=f"{p10:.0f} of {top:.0f} MHz, {len(loaded)} loaded samples")
    else:
        clock = Measurement("soak.gpu.clock_under_load", float("nan"), "%", low=cfg.min_gpu_clock_pct,
                            inconclusive=why or ("tegrastats prints no GPU clock (JetPack 6: set the clock "
                                                 "source or read it from devfreq)" if not clocks else
                                                 f"the GPU was never loaded to {cfg.gpu_load_pct:g}%"))
    hottest = [s.hottest for s in inputs.tegra if s.hottest]
    if hottest:
        sensor, value = max(hottest, key=lambda kv: kv[1])
        temp = Measurement("soak.temperature.max", value, "C", high=cfg.temp_limit_c - cfg.temp_margin_c,
                           nominal=f"{sensor}, limit {cfg.temp_limit_c:g} C - {cfg.temp_margin_c:g} C margin")
    else:
        temp = Measurement("soak.temperature.max", float("nan"), "C", high=cfg.temp_limit_c - cfg.temp_margin_c,
                           inconclusive=why or "tegrastats printed no temperature")
    return [clock, temp]


# -- the test processes' memory --------------------------------------------------------------------------------
def tree(root: int) -> list[int]:
    """`root` and every process below it (by /proc/PID/stat's parent), for the RSS of a test run and its helpers."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def rss_mb(pids: list[int]) -> float:
    """Resident memory of these processes in MB (VmRSS; gone processes count 0)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except (OSError, ValueError, IndexError):
            continue
    return total / 1024.0


def line(m: Measurement) -> str:
    """One figure as the soak prints it: its verdict and message, or why it could not be measured."""
    if math.isnan(m.value):
        return f"{m.verdict:<12} {m.name}: not measured: {m.inconclusive}"
    return f"{m.verdict:<12} {m.message()}"


class RssSampler:
    """RSS of a process tree every `interval_s` in a thread, as (monotonic t, MB)."""

    def __init__(self, root: int, interval_s: float):
        self.root, self.interval_s = root, interval_s
        self.samples: list[tuple[float, float]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def start(self) -> RssSampler:
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.done.wait(self.interval_s):
            mb = rss_mb(tree(self.root))
            if mb > 0:
                self.samples.append((time.monotonic(), mb))

    def stop(self) -> None:
        self.done.set()
        self.thread.join(5)
