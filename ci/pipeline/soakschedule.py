"""The nightly soak's schedule, from hilci.yaml's `soak:` section, for both engines that run it: Jenkins's
parameterized cron lines (one per board, `% SOAK=<duration>;BOARDS=<board>`) and a Kubernetes CronJob per rig.

Jenkins's `H` spreads by the job's name; a CronJob has no `H`, so each rig gets a fixed value hashed from its
board's name (stable across renders, different between boards). Jenkins builds of one job never overlap
(`disableConcurrentBuilds(abortPrevious: true)` would abort a running soak), so the boards' lines follow one
another: board i starts i x ceil(duration in hours) hours after the first, which needs a numeric hour.
"""

from __future__ import annotations

import hashlib
import math
import re

from hilci.errors import ConfigError
from hilci.pipeline.sections import SoakSettings, parse_duration

# cron fields: (name, first, last) as Jenkins hashes them (day of month 1-28, so every month has it)
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 28), ("month", 1, 12), ("day of week", 0, 6))
_H = re.compile(r"^H(?:\((\d+)-(\d+)\))?(?:/(\d+))?$")


def _hash(seed: str) -> int:
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big")


def without_h(spec: str, seed: str) -> str:
    """A Jenkins cron spec with every `H`, `H(a-b)` and `H/n` made a fixed value hashed from `seed`."""
    fields = spec.split()
    out = []
    for (name, first, last), field in zip(FIELDS, fields, strict=True):
        m = _H.match(field)
        if not m:
            out.append(field)
            continue
        lo, hi = (int(m[1]), int(m[2])) if m[1] else (first, last)
        step = int(m[3]) if m[3] else 0
        h = _hash(f"{seed}:{name}")
        if step:
            out.append(f"{lo + h % step}-{hi}/{step}")
        else:
            out.append(str(lo + h % (hi - lo + 1)))
    return " ".join(out)


def jenkins_lines(soak: SoakSettings, boards: list[str]) -> list[str]:
    """One parameterized-scheduler line per board, each starting when the one before it has had its duration."""
    fields = soak.schedule.split()
    if not fields[1].isdigit():
        raise ConfigError([f"hilci.yaml: soak.schedule: {soak.schedule!r}: the hour must be a number (e.g. "
                           "'H 2 * * *'), so that each board's soak can start after the one before it ended"])
    hours = math.ceil(parse_duration(soak.duration, "hilci.yaml: soak.duration") / 3600)
    lines = []
    for i, board in enumerate(boards):
        hour = (int(fields[1]) + i * hours) % 24
        spec = " ".join([fields[0], str(hour), *fields[2:]])
        lines.append(f"{spec} % SOAK={soak.duration};BOARDS={board}")
    return lines
