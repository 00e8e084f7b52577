"""Busy share and double allocation from holding intervals: what `hilci cluster` reports per rig and GPU, and what
`benchmarks/cluster.py` measures on its queue of builds. Times are seconds on any one clock."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hold:
    """Something (a pod, a build) held a resource from `start` to `end` (None: still holding)."""

    holder: str
    start: float
    end: float | None


def clip(holds: list[Hold], start: float, end: float) -> list[tuple[float, float, str]]:
    """The part of each hold inside [start, end], open holds ending at `end`; empty parts dropped."""
    out = []
    for h in holds:
        a, b = max(h.start, start), min(h.end if h.end is not None else end, end)
        if b > a:
            out.append((a, b, h.holder))
    return sorted(out)


def busy_share(holds: list[Hold], start: float, end: float) -> float:
    """Fraction of [start, end] during which at least one hold was active (overlaps counted once)."""
    if end <= start:
        return 0.0
    busy, reach = 0.0, start
    for a, b, _ in clip(holds, start, end):
        if b > reach:
            busy += b - max(a, reach)
            reach = b
    return busy / (end - start)


def overlaps(holds: list[Hold], start: float, end: float) -> list[tuple[str, str]]:
    """Pairs of holders whose holds overlap inside [start, end]: a resource allocated twice."""
    pairs = []
    spans = clip(holds, start, end)
    for i, (_a, b, who) in enumerate(spans):
        for a2, _b2, who2 in spans[i + 1:]:
            if a2 >= b:
                break
            if who2 != who:
                pairs.append((who, who2))
    return pairs
