"""How people read a measurement: its numbers, the statistic behind `value`, its limits and its verdict word.

One wording for the terminal summary, `pytest hil_tests`'s measurement table and the HTML report. A
measurement is the `{field: text}` dict that `hilci.results.measurements.parse_properties` gives back from JUnit.
Standard library only: the HIL side imports it on a Jetson.
"""

from __future__ import annotations

import math

from hilci.results.measurements import FAIL, PASS, _fmt

INFO = "info"  # a measurement without limits: recorded, never judged
INCONCLUSIVE = "inconclusive"


def number(text: str | float | int | None) -> str:
    """'2000' for an integral value (never '2000.0'), else four significant digits; text that is no number as is."""
    if text is None:
        return ""
    try:
        x = float(text)
    except (TypeError, ValueError):
        return str(text)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return _fmt(x)


def has_limits(fields: dict[str, str]) -> bool:
    return "low" in fields or "high" in fields


def verdict(fields: dict[str, str]) -> str:
    """pass | fail | info (no limits: nothing was judged) | whatever else was recorded, word for word."""
    word = fields.get("verdict", "")
    if word == PASS and not has_limits(fields):
        return INFO
    return word or INFO


def statistic(fields: dict[str, str]) -> str:
    """The statistic `value` stands for: a distribution's gate (p99 by default), '' for a plain value."""
    if "gate" in fields:
        return fields["gate"]
    return "p99" if "p99" in fields else ""


def value_text(fields: dict[str, str]) -> str:
    """'p99 1.31 ms', or '0.9917' for a plain value."""
    stat = statistic(fields)
    unit = fields.get("unit", "")
    return " ".join(p for p in (stat, number(fields.get("value")), unit) if p)


def limits_text(fields: dict[str, str]) -> str:
    """'≥ 196 Hz', '≤ 10 ms', '196 – 204 Hz', '= 1060', or '' without limits."""
    unit = f" {fields['unit']}" if fields.get("unit") else ""
    low, high = fields.get("low"), fields.get("high")
    if low is not None and high is not None:
        return f"= {number(low)}{unit}" if number(low) == number(high) else f"{number(low)} – {number(high)}{unit}"
    if low is not None:
        return f"≥ {number(low)}{unit}"
    if high is not None:
        return f"≤ {number(high)}{unit}"
    return ""


def is_failed(fields: dict[str, str]) -> bool:
    return fields.get("verdict") == FAIL


def headline(measurements: dict[str, dict[str, str]], tests: int) -> str:
    """A passing stage in a few words: '12 tests · accuracy 0.9917 · latency p99 1.3 ms'."""
    parts = [f"{tests} test{'s' if tests != 1 else ''}"] if tests else []
    accuracies = [(n, f) for n, f in measurements.items() if n.rsplit(".", 1)[-1].endswith("accuracy")]
    if accuracies:
        parts.append(f"accuracy {number(accuracies[-1][1].get('value'))}")
    latency = _headline_latency(measurements)
    if latency:
        name, fields = latency
        parts.append(f"{name} p99 {number(fields['p99'])} {fields.get('unit', '')}".rstrip())
    return " · ".join(parts)


def _headline_latency(measurements: dict[str, dict[str, str]]) -> tuple[str, dict[str, str]] | None:
    """The distribution a reader wants first: one named latency, else the worst p99 in milliseconds."""
    timed = [(n, f) for n, f in measurements.items() if "p99" in f and f.get("unit") == "ms"]
    if not timed:
        return None
    named = [(n, f) for n, f in timed if "latency" in n]
    pick = named[0] if named else max(timed, key=lambda nf: _float(nf[1]["p99"]))
    return ("latency" if named else pick[0]), pick[1]


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("-inf")


def verdict_counts(measurements: list[dict[str, str]]) -> dict[str, int]:
    """How many measurements got each verdict word (inconclusive counted when a stage records it)."""
    counts: dict[str, int] = {}
    for fields in measurements:
        word = verdict(fields)
        counts[word] = counts.get(word, 0) + 1
    return counts
