"""The typed top-level sections of hilci.yaml that belong to no one stage: `regressions` (the regression gates).

They live here, beside the config that reads them, so reading hilci.yaml needs nothing from the layers that use
them (the store judges with `GateSettings`; the config only types it).
"""

from __future__ import annotations

from typing import Any

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
