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
from typing import Any

from hilci.pipeline.sections import HIGHER, LOWER, NEUTRAL, GateSettings
from hilci.results import junit
from hilci.store import history
from hilci.store.backend import Store
from hilci.store.trust import Trust

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


class RegressionGates:
    """The gates of one run: each measured record against the target branch's green runs on its board.

    Judging only reads; what follows from a regression (the record rewritten, its cache entry dropped) is the
    caller's (`hilci.store.session.StoreSession.judge`)."""

    def __init__(self, store: Store, trust: Trust, settings: GateSettings, target: str) -> None:
        self.store = store
        self.trust = trust
        self.settings = settings
        self.target = target  # the branch whose history is the baseline (a PR's target, else its own branch)

    def judge(self, record: dict) -> list[Judgement]:
        """One record's measurements; StoreUnavailable when the baseline cannot be read."""
        this = (record.get("commit"), record.get("build"))
        # the baseline's window of green runs, read newest first: O(window), not O(history)
        base = history.recent(self.store, self.target, record["board"], self.trust.history_ns(self.target),
                              stage=record["stage"], last=self.settings.window,
                              keep=lambda r: baseline_for([r], record["stage"], this) != [])
        judged = judge_record(record, base.records, self.target, self.settings)
        if record.get("emulated"):  # an emulated rig's timing follows the shared host: reported, not gated
            for j in judged:
                if j.regressed and is_timing(j.unit):
                    j.status, j.message = "inconclusive", f"{j.message}: emulated rig, not gated"
        return judged


def as_cases(judgements: list[Judgement], gating: bool) -> list:
    """The judgements as testcases: a failure per regression (a skip when not `gating`: no shared store, so no
    CI baseline), skipped when inconclusive or history is too short."""
    cases = []
    for j in judgements:
        if j.status == "not-gated":
            continue
        kw: dict[str, Any] = {}
        if j.regressed and gating:
            kw["failure"] = j.message
        elif j.regressed:
            kw["skipped"] = f"not gated (no shared store): {j.message}"
        elif j.status in ("inconclusive", "too-little-history"):
            kw["skipped"] = j.message
        cases.append(junit.make_case(j.name, "hilci.regressions", properties=[("regression.baseline",
                     "" if j.baseline is None else f"{j.baseline:g}"), ("regression.runs", str(j.runs))],
                     stdout=j.message, **kw))
    return cases
