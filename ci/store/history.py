"""Measurement history: one record per run and stage under `history/<branch>/<board>/`, read back as trends.

A record holds the commit, branch, build, board and rig, the stage, its start and duration, its status, the
cache key it used, every measurement of its JUnit (value, unit, limits, verdict and distribution fields) and the
environment facts. A record of a newer format is skipped and named, never misread. Records that could not be
written (the store was away) wait in the local spool and are sent by the next run that reaches the store.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hilci.results import junit
from hilci.store.backend import Store, StoreUnavailable

RECORD_FORMAT = 1
SPOOL = "pending-history"
SPARKS = "▁▂▃▄▅▆▇█"


def measurements_of(junit_file: Path) -> dict[str, dict[str, Any]]:
    """Every measurement in a stage's JUnit, numbers as floats: {name: {value, unit, low, high, verdict, ...}}."""
    out: dict[str, dict[str, Any]] = {}
    if not junit_file.is_file():
        return out
    for case in junit.read_cases(junit_file):
        for name, fields in case.measurements.items():
            out[name] = {k: _number(v) for k, v in fields.items()}
    return out


def failures_of(junit_file: Path) -> dict[str, int]:
    """How many testcases of a stage's JUnit failed for each class (`failure`, `infrastructure`), were the
    host's (`host`, inconclusive) or were run again (`retried`): the HIL plugin's testcase properties."""
    out: dict[str, int] = {}
    if not junit_file.is_file():
        return out
    for case in junit.read_cases(junit_file):
        if case.failure_class:
            out[case.failure_class] = out.get(case.failure_class, 0) + 1
        if case.retried:
            out["retried"] = out.get("retried", 0) + 1
    return out


def _number(text: str) -> Any:
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def make_record(*, origin: dict, board: str, rig: str, stage: str, start: float, duration_s: float, status: str,
                key: str, measurements: dict, environment: dict, cached: bool = False) -> dict:
    return {"format": RECORD_FORMAT, "commit": origin.get("commit", "unknown"),
            "branch": origin.get("branch", "unknown"), "build": origin.get("build", "local"), "board": board,
            "rig": rig, "stage": stage, "start": start,
            "start_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)), "duration_s": duration_s,
            "status": status, "cache_key": key, "cached": cached, "measurements": measurements,
            "environment": environment}


def record_path(record: dict) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(record["start"])) + f"{record['start'] % 1:.6f}"[1:]
    return (f"history/{quote(record['branch'], safe='')}/{quote(record['board'], safe='')}/"
            f"{stamp}Z-{record['commit'][:12]}-{record['stage']}.json")


def append(store: Store | None, record: dict, spool_dir: Path) -> str:
    """Write a record to the store, or into the local spool when the store is away; '' when it went to the
    store, 'kept' when spooled, else why it was dropped."""
    data = json.dumps(record, indent=1, sort_keys=True, default=str).encode()
    rel = record_path(record)
    if store is not None:
        try:
            store.write_bytes(rel, data)
            return ""
        except StoreUnavailable as exc:
            why = str(exc)
    else:
        why = "no store"
    target = spool_dir / SPOOL / rel
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return "kept"
    except OSError as exc:
        return f"history record {rel} dropped ({why}; spool unwritable: {exc.strerror})"


def flush_spool(store: Store, spool_dir: Path) -> int:
    """Send records that waited in the spool; returns how many were sent."""
    root = spool_dir / SPOOL
    sent = 0
    if not root.is_dir():
        return 0
    for path in sorted(root.rglob("*.json")):
        rel = str(path.relative_to(root))
        try:
            store.write_bytes(rel, path.read_bytes())
        except StoreUnavailable:
            break
        path.unlink()
        sent += 1
    return sent


@dataclass
class History:
    """Records read from the store, with the ones that could not be used named in `skipped`."""

    records: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def load(store: Store, branch: str | None = None, board: str | None = None) -> History:
    """Every readable record (oldest first), filtered by branch and board when given."""
    prefix = "history"
    if branch:
        prefix += "/" + quote(branch, safe="")
        if board:
            prefix += "/" + quote(board, safe="")
    hist = History()
    for item in store.list(prefix):
        if not item.rel.endswith(".json"):
            continue
        data = store.read_bytes(item.rel)
        try:
            record = json.loads(data or b"")
        except ValueError:
            hist.skipped.append(f"{item.rel}: unreadable history record")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("format"), int):
            hist.skipped.append(f"{item.rel}: not a history record")
            continue
        if record["format"] > RECORD_FORMAT:
            hist.skipped.append(f"{item.rel}: record format {record['format']} is newer than this hilci reads "
                                f"({RECORD_FORMAT}); skipped")
            continue
        if not isinstance(record.get("measurements"), dict) or not isinstance(record.get("start"), (int, float)):
            hist.skipped.append(f"{item.rel}: malformed history record")
            continue
        if board and record.get("board") != board:
            continue
        hist.records.append(record)
    hist.records.sort(key=lambda r: r["start"])
    return hist


def values(records: list[dict], measurement: str) -> list[tuple[dict, float]]:
    """(record, value) for each record holding a numeric value of `measurement` (cached stages excluded)."""
    out = []
    for record in records:
        if record.get("cached"):
            continue
        value = (record["measurements"].get(measurement) or {}).get("value")
        if isinstance(value, (int, float)):
            out.append((record, float(value)))
    return out


def sparkline(series: list[float]) -> str:
    """Unicode bars scaled between the series' min and max."""
    if not series:
        return ""
    low, high = min(series), max(series)
    span = high - low
    return "".join(SPARKS[0 if span == 0 else min(7, int((v - low) / span * 7.999))] for v in series)
