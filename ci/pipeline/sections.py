"""The typed top-level sections of hilci.yaml that belong to no one stage: `regressions` (the regression gates)
and `soak` (the scheduled soak of every rig, `hilci soak`).

They live here, beside the config that reads them, so reading hilci.yaml needs nothing from the layers that use
them (the store judges with `GateSettings`; the config only types it).
"""

from __future__ import annotations

import re
from typing import Any

from hilci.errors import SettingsError
from hilci.util import settings as typed

DEFAULT_TRUSTED = ("main", "master", "release/*")  # branches whose builds write what every build reads
LOWER, HIGHER, NEUTRAL = "lower", "higher", "none"  # a measurement's direction: which way is better


@typed.settings
class MeasurementGate:
    """One measurement's own direction and tolerance (hilci.yaml `regressions.measurements.NAME`)."""

    direction: str | None = typed.text(None, choices=(LOWER, HIGHER, NEUTRAL), allow_none=True)  # default: by name
    tolerance: float | None = typed.number(None, ge=0, le=1e6, allow_none=True)  # default: the section's `relative`


@typed.settings
class GateSettings:
    """hilci.yaml's `regressions:` section (all optional)."""

    window: int = typed.integer(20, ge=2, le=10_000, help="last green runs in the baseline")
    min_runs: int = typed.integer(5, ge=2, le=10_000, help="fewer: too little history, reported not gated")
    relative: float = typed.number(0.10, ge=0, le=1e6, help="worse than the baseline mean by more than this fraction")
    test: str = typed.text("t", choices=("t", "z", "none"), help="the statistical limit that must be crossed as well")
    confidence: float = typed.number(0.99, gt=0.5, le=0.9999, help="t: one-sided prediction interval")
    z: float = typed.number(3.0, ge=0, le=1e6, help="z: standard deviations")
    measurements: dict = typed.mapping(help="NAME: {direction: lower|higher|none, tolerance: 0.2}")

    def check(self, file: Any) -> None:
        """Each named measurement's settings, typed like the rest (called by hilci.pipeline.config)."""
        for name, spec in self.measurements.items():
            typed.build(MeasurementGate, spec, file=file, prefix=f"regressions.measurements.{name}.")


@typed.settings
class StoreSettings:
    """hilci.yaml's top-level settings of the shared store, beside `store:` (all optional)."""

    trusted_branches: list = typed.str_list(list(DEFAULT_TRUSTED),
                                            help="branches (shell globs) whose builds write what they all read; "
                                                 "every other build writes under branches/<name>/ only")
    store_optional: bool = typed.flag(False, help="a configured store without credentials: go on without it "
                                                  "(default: a usage error)")


@typed.settings
class SoakSettings:
    """hilci.yaml's `soak:` section: what the soak runs, how often it is scheduled and the gates on its trends."""

    marker: str = typed.text("latency or sensor or actuator", help="pytest -m expression: the soak profile of the "
                                                                   "HIL suites")
    keyword: str = typed.text("", nonempty=False, help="pytest -k expression narrowing the profile ('': all)")
    trends: list = typed.str_list(["loop", "engine.inference", "*.roundtrip", "*.rate"],
                                  help="measurements (globs) whose trend is gated: ms ones as latencies, Hz as rates")
    schedule: str = typed.text("H 2 * * *", help="Jenkins cron spec of the nightly soak (H: spread by job name); the "
                                                 "CronJob gets the same fields with H made a fixed number per rig")
    duration: str = typed.text("1h", help="how long a scheduled soak runs: 90s, 30m, 8h")
    stage: str = typed.text("hil", help="the matrix stage a soak build runs as `hilci soak` (Jenkins)")
    branch: str = typed.text("main", help="the branch whose builds the nightly soak runs on (Jenkins)")
    interval_s: float = typed.number(1.0, gt=0, le=60, help="tegrastats and RSS sampling period")
    latency_drift_pct: float = typed.number(25.0, ge=0, le=1e6, help="a latency may grow this much over the soak")
    latency_floor_ms: float = typed.number(1.0, ge=0, le=1e6, help="a latency change smaller than this is no trend "
                                                                  "(sub-millisecond noise of a shared host)")
    rate_drift_pct: float = typed.number(5.0, ge=0, le=100, help="a rate may move this much over the soak")
    memory_growth_mb: float = typed.number(64.0, ge=0, le=1e6, help="the test processes' RSS may grow this much")
    gpu_load_pct: float = typed.number(50.0, ge=0, le=100, help="GR3D load above which the GPU counts as loaded")
    min_gpu_clock_pct: float = typed.number(90.0, ge=0, le=100, help="loaded GPU clock against its maximum")
    gpu_max_mhz: float | None = typed.number(None, gt=0, le=10_000, allow_none=True,
                                             help="the GPU's maximum clock (default: the highest seen in the soak)")
    temp_limit_c: float = typed.number(99.0, gt=0, le=200, help="the board's throttle point (Orin: 99 C)")
    temp_margin_c: float = typed.number(5.0, ge=0, le=100, help="fail this close to the limit")
    min_pass_rate_pct: float = typed.number(100.0, ge=0, le=100, help="test runs that must pass")

    def check(self, file: Any) -> None:
        """The duration and the cron spec (five fields; Jenkins's H allowed), one line naming the field."""
        try:
            parse_duration(self.duration, f"{file}: soak.duration")
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        fields = self.schedule.split()
        if len(fields) != 5 or not all(re.fullmatch(r"[0-9HhA-Za-z*/,()\-]+", f) for f in fields):
            raise SettingsError(f"{file}: soak.schedule: {self.schedule!r}: expected a cron spec of five fields "
                                "(minute hour day month weekday), e.g. 'H 2 * * *'")


def parse_duration(text: str, where: str = "--duration") -> float:
    """'90', '90s', '30m', '8h' -> seconds; ValueError naming `where` otherwise."""
    value = str(text).strip()
    scale = {"s": 1, "m": 60, "h": 3600}.get(value[-1:], None)
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        raise ValueError(f"{where}: {text!r}: expected seconds or a number with s, m or h (e.g. 30m)") from None
    if not 0 < seconds <= 7 * 86400:
        raise ValueError(f"{where}: {text!r}: expected more than 0 and at most a week")
    return seconds
