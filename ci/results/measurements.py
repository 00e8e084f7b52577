"""Measurements: named values and distributions with units and limits, and their one JUnit spelling.

Every gate in hilci (a HIL sensor rate, a latency budget, a model's accuracy drop) is a `Measurement`, so the
JUnit properties, `hilci results` and the HTML report all read the same fields:

    NAME.value    the gated number (for a distribution: the statistic named by `gate`, e.g. p99)
    NAME.unit     its unit ("" when dimensionless)
    NAME.low      lower limit, if any          NAME.high    upper limit, if any
    NAME.verdict  pass | fail | inconclusive
                  (inconclusive: a timing result on an emulated rig that the host's own wake-up latency
                  explains; NAME.inconclusive says why. It neither passes nor fails the test.)
    distributions add NAME.n, NAME.min, NAME.mean, NAME.p50, NAME.p90, NAME.p99, NAME.max, NAME.jitter

Limits are spelled `low`/`high` so they never collide with a distribution's observed `min`/`max`.
This module imports only the standard library: it runs on a Jetson next to the HIL suites.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"
STAT_FIELDS = ("n", "min", "mean", "p50", "p90", "p99", "max", "jitter")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        raise ValueError("percentile of no samples")
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


@dataclass(frozen=True)
class Stats:
    """Summary of a sample: what a latency or jitter budget is judged on."""

    n: int
    min: float
    mean: float
    p50: float
    p90: float
    p99: float
    max: float
    jitter: float  # standard deviation of the samples (0 for one sample)

    @classmethod
    def of(cls, samples: Iterable[float]) -> Stats:
        values = sorted(float(v) for v in samples)
        if not values:
            raise ValueError("statistics of no samples")
        return cls(
            n=len(values),
            min=values[0],
            mean=statistics.fmean(values),
            p50=percentile(values, 50),
            p90=percentile(values, 90),
            p99=percentile(values, 99),
            max=values[-1],
            jitter=statistics.pstdev(values) if len(values) > 1 else 0.0,
        )


def _fmt(x: float) -> str:
    """Numbers as people read them: 4 significant digits, no exponent for everyday magnitudes."""
    if x == 0 or 1e-3 <= abs(x) < 1e6:
        text = f"{x:.4g}" if abs(x) < 1e4 else f"{x:.1f}"
        return text
    return f"{x:.3e}"


@dataclass
class Measurement:
    """One named, gated number (or distribution) with unit, limits and a verdict."""

    name: str
    value: float
    unit: str = ""
    low: float | None = None
    high: float | None = None
    stats: Stats | None = None
    nominal: str = ""  # how the limit was derived, e.g. "200 Hz -2%"; shown in the failure message
    extra: dict[str, str] = field(default_factory=dict)
    inconclusive: str = ""  # why a failed result says nothing about the device (set by whoever judges the host)

    @property
    def passed(self) -> bool:
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return False
        if self.low is not None and self.value < self.low:
            return False
        if self.high is not None and self.value > self.high:
            return False
        return True

    @property
    def verdict(self) -> str:
        if self.passed:
            return PASS
        return INCONCLUSIVE if self.inconclusive else FAIL

    @property
    def failed(self) -> bool:
        """A failure that counts: neither passed nor inconclusive."""
        return self.verdict == FAIL

    def message(self) -> str:
        """'imu rate 188.2 Hz below limit 196.0 Hz (200 Hz -2%)' — what was expected and what was measured."""
        label = self.name.replace(".", " ").replace("_", " ")
        unit = f" {self.unit}" if self.unit else ""
        why = f" ({self.nominal})" if self.nominal else ""
        inconclusive = f", inconclusive: {self.inconclusive}" if self.verdict == INCONCLUSIVE else ""
        if self.low is not None and self.value < self.low:
            return f"{label} {_fmt(self.value)}{unit} below limit {_fmt(self.low)}{unit}{why}{inconclusive}"
        if self.high is not None and self.value > self.high:
            return f"{label} {_fmt(self.value)}{unit} above limit {_fmt(self.high)}{unit}{why}{inconclusive}"
        bounds = []
        if self.low is not None:
            bounds.append(f">= {_fmt(self.low)}{unit}")
        if self.high is not None:
            bounds.append(f"<= {_fmt(self.high)}{unit}")
        limit = f" within {' and '.join(bounds)}" if bounds else ""
        return f"{label} {_fmt(self.value)}{unit}{limit}{why}"

    def properties(self) -> list[tuple[str, str]]:
        """The JUnit testcase properties of this measurement, one per field."""
        props = [(f"{self.name}.value", _num(self.value)), (f"{self.name}.unit", self.unit)]
        if self.low is not None:
            props.append((f"{self.name}.low", _num(self.low)))
        if self.high is not None:
            props.append((f"{self.name}.high", _num(self.high)))
        if self.stats is not None:
            for key in STAT_FIELDS:
                props.append((f"{self.name}.{key}", _num(getattr(self.stats, key))))
        for key, val in self.extra.items():
            props.append((f"{self.name}.{key}", str(val)))
        if self.verdict == INCONCLUSIVE:
            props.append((f"{self.name}.inconclusive", self.inconclusive))
        props.append((f"{self.name}.verdict", self.verdict))
        return props


def _num(x: float) -> str:
    if isinstance(x, int):
        return str(x)
    return repr(round(float(x), 6))


def measure(name: str, value: float, unit: str = "", *, low: float | None = None,
            high: float | None = None, nominal: str = "") -> Measurement:
    """A scalar measurement, e.g. `measure("train.accuracy", 0.991, low=0.95)`."""
    return Measurement(name=name, value=float(value), unit=unit, low=low, high=high, nominal=nominal)


def distribution(name: str, samples: Iterable[float], unit: str = "", *, gate: str = "p99",
                 low: float | None = None, high: float | None = None, nominal: str = "") -> Measurement:
    """A distribution judged on one statistic (`gate`: p99 by default), with every statistic recorded."""
    if gate not in STAT_FIELDS:
        raise ValueError(f"gate must be one of {STAT_FIELDS}, not {gate!r}")
    stats = Stats.of(samples)
    return Measurement(name=name, value=float(getattr(stats, gate)), unit=unit,
                       low=low, high=high, stats=stats, nominal=nominal, extra={"gate": gate})


def rate_hz(timestamps_ns: Sequence[int]) -> float:
    """Events per second between the first and the last timestamp (0 with fewer than two)."""
    if len(timestamps_ns) < 2 or timestamps_ns[-1] <= timestamps_ns[0]:
        return 0.0
    return (len(timestamps_ns) - 1) / ((timestamps_ns[-1] - timestamps_ns[0]) / 1e9)


def intervals_ms(timestamps_ns: Sequence[int]) -> list[float]:
    """Gaps between consecutive timestamps, in milliseconds."""
    return [(b - a) / 1e6 for a, b in zip(timestamps_ns, timestamps_ns[1:], strict=False)]


def within_percent(nominal: float, percent: float) -> tuple[float, float]:
    """Limits nominal ± percent, e.g. a 200 Hz rate within 2% -> (196.0, 204.0)."""
    delta = abs(nominal) * percent / 100.0
    return nominal - delta, nominal + delta


def parse_properties(props: Iterable[tuple[str, str]]) -> dict[str, dict[str, str]]:
    """Group flat JUnit properties back into {measurement name: {field: value}}.

    Only names that carry a `.verdict` are measurements; other properties are ignored.
    """
    flat = dict(props)
    names = [k[: -len(".verdict")] for k in flat if k.endswith(".verdict")]
    out: dict[str, dict[str, str]] = {}
    for name in names:
        prefix = name + "."
        out[name] = {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix) and "." not in k[len(prefix):]}
    return out


# --- declared measurements (OpenHTF-style): promised before the value exists ---------------------------------
UNSET = "unset"  # NAME.verdict of a declared measurement its test never reached (NAME.value is then "")


@dataclass(frozen=True)
class Declared:
    """A measurement a test promises before it runs: name, unit and limits (None: the gate's limits decide).

    Written as UNSET rows when the test starts, so a test that fails early shows which of its measurements
    it never took, instead of holes."""

    name: str
    unit: str = ""
    low: float | None = None
    high: float | None = None

    def properties(self) -> list[tuple[str, str]]:
        props = [(f"{self.name}.value", ""), (f"{self.name}.unit", self.unit)]
        if self.low is not None:
            props.append((f"{self.name}.low", _num(self.low)))
        if self.high is not None:
            props.append((f"{self.name}.high", _num(self.high)))
        props.append((f"{self.name}.verdict", UNSET))
        return props


def replace_properties(props: list[tuple[str, str]], measurement: Measurement) -> None:
    """Put `measurement`'s rows in `props` in place of any earlier rows of that name (its UNSET rows)."""
    prefix = measurement.name + "."
    props[:] = [(k, v) for k, v in props if not (k.startswith(prefix) and "." not in k[len(prefix):])]
    props.extend(measurement.properties())
