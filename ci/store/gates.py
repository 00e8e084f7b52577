"""Regression gates: each measurement against a baseline of the target branch's last green runs on one board.

A measurement has a direction (lower is better for latency, jitter, drops and errors; higher for rates,
throughput and accuracy; neither: not gated) and a tolerance. A value regresses when it is worse than the
baseline's mean by more than the relative tolerance AND, with the statistical test on, lies outside the
baseline window's limit: a z-score (`z`) or Student's t prediction interval (`t`), as Bencher's thresholds do.
Fewer green runs than `min_runs` is reported as too little history, never gated.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from hilci.pipeline.sections import HIGHER, LOWER, NEUTRAL, GateSettings
from hilci.store import history

# Gated by default only where the direction is unambiguous; anything else (spreads, parity residuals, counts) is
# gated when hilci.yaml's `regressions.measurements` names its direction.
_LOWER_WORDS = ("latency", "jitter", "roundtrip", "drop")
_HIGHER_WORDS = ("rate", "throughput", "accuracy", "agreement", "qps", "fps")
_LOWER_UNITS = ("ms", "us", "µs", "ns", "s", "pp")
_HIGHER_UNITS = ("hz", "qps", "fps")


def direction_of(name: str, unit: str) -> str:
    """Lower is better for times and accuracy drops, higher for rates, throughput and accuracy; else not gated."""
    low, unit = name.lower(), unit.lower()
    if unit in _HIGHER_UNITS or any(w in low for w in _HIGHER_WORDS):
        return HIGHER
    if unit in _LOWER_UNITS or any(w in low for w in _LOWER_WORDS):
        return LOWER
    return NEUTRAL


@dataclass
class Judgement:
    """One measurement against its baseline: regression | ok | too-little-history | not-gated."""

    name: str
    status: str
    message: str
    value: float
    baseline: float | None = None
    runs: int = 0
    unit: str = ""

    @property
    def regressed(self) -> bool:
        return self.status == "regression"


def is_timing(unit: str) -> bool:
    """A time measured on the host (what a busy shared host stretches)."""
    return unit.lower() in ("ms", "us", "µs", "ns", "s")


def t_quantile(p: float, dof: int) -> float:
    """Student's t quantile by the Cornish-Fisher expansion around the normal (good to ~1e-3 for dof >= 3)."""
    z = statistics.NormalDist().inv_cdf(p)
    v = float(max(dof, 1))
    return (z + (z ** 3 + z) / (4 * v) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * v ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * v ** 3))


def _fmt(x: float) -> str:
    """Three significant digits, at least one decimal below 1000: 6.9, 5.0, 12.3, 1234."""
    if abs(x) >= 1000:
        return f"{x:.0f}"
    text = f"{x:.3g}"
    return text if ("." in text or "e" in text) else text + ".0"


def judge(name: str, value: float, unit: str, baseline: list[tuple[dict, float]], branch: str,
          settings: GateSettings) -> Judgement:
    """Judge one value against baseline (record, value) pairs, oldest first."""
    spec = settings.measurements.get(name) or {}
    direction = spec.get("direction") or direction_of(name, unit)
    tolerance = float(spec["tolerance"] if spec.get("tolerance") is not None else settings.relative)
    window = baseline[-settings.window:]
    u = f" {unit}" if unit else ""
    if direction == NEUTRAL:
        return Judgement(name, "not-gated", f"{name} {_fmt(value)}{u}: no direction, not gated", value)
    if len(window) < settings.min_runs:
        return Judgement(name, "too-little-history",
                         f"{name} {_fmt(value)}{u}: {len(window)} green runs of {branch} on this board "
                         f"(need {settings.min_runs}); not gated", value, runs=len(window))
    series = [v for _, v in window]
    mean = statistics.fmean(series)
    std = statistics.stdev(series) if len(series) > 1 else 0.0
    if abs(mean) < 1e-12:
        return Judgement(name, "not-gated", f"{name} {_fmt(value)}{u}: baseline 0, a relative change is undefined; "
                         "not gated", value, baseline=mean, runs=len(window))
    sign = 1.0 if direction == LOWER else -1.0
    worse = sign * (value - mean)
    rel = worse / abs(mean)
    if settings.test == "z":
        limit = settings.z * std
    elif settings.test == "t":
        limit = t_quantile(settings.confidence, len(series) - 1) * std * math.sqrt(1 + 1 / len(series))
    else:
        limit = 0.0
    last = window[-1][0]
    if mean > 0:
        change = (value - mean) / mean * 100
        delta = f"{change:+.0f}% {'over' if change >= 0 else 'under'}"
    else:  # a percentage of a baseline at or below zero means nothing: the difference instead
        delta = f"{_fmt(value - mean)}{u} {'over' if value >= mean else 'under'}"
        delta = delta if delta.startswith("-") else "+" + delta
    text = (f"{name} {_fmt(value)}{u}, {delta} baseline "
            f"{_fmt(mean)}{u} ({branch}, {len(window)} runs up to {str(last.get('commit', '?'))[:7]})")
    regressed = worse > 0 and rel > tolerance and worse > limit
    return Judgement(name, "regression" if regressed else "ok", text, value, baseline=mean, runs=len(window),
                     unit=unit)


def baseline_for(records: list[dict], stage: str, exclude: tuple[str, str] | None = None) -> list[dict]:
    """The green (passed, not cached) records of one stage, oldest first, without the run being judged."""
    return [r for r in records if r.get("stage") == stage and r.get("status") == "passed" and not r.get("cached")
            and (exclude is None or (r.get("commit"), r.get("build")) != exclude)]


def judge_record(record: dict, baseline_records: list[dict], branch: str,
                 settings: GateSettings) -> list[Judgement]:
    """Every numeric measurement of a record against the baseline records of the same stage and board."""
    base = baseline_for(baseline_records, record["stage"], (record.get("commit"), record.get("build")))
    out = []
    for name, fields in sorted(record["measurements"].items()):
        value = fields.get("value")
        if not isinstance(value, (int, float)):
            continue
        out.append(judge(name, float(value), str(fields.get("unit") or ""), history.values(base, name), branch,
                         settings))
    return out
