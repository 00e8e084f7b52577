"""Measurement history: one record per run and stage under `history/<branch>/<board>/`, read back as trends.

A record holds the commit, branch, build, board and rig, the stage, its start and duration, its status, the
cache key it used, every measurement of its JUnit (value, unit, limits, verdict and distribution fields) and the
environment facts. A record of a newer format is skipped and named, never misread. Records that could not be
written (the store was away) wait in the local spool and are sent by the next run that reaches the store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
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


def record_path(record: dict, ns: str = "") -> str:
    """Where a record lies: `<ns>history/<branch>/<board>/<day>/<time>-<commit>-<stage>.json`. A folder per UTC
    day keeps each listing short: the newest runs are found by listing the newest days only."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(record["start"])) + f"{record['start'] % 1:.6f}"[1:]
    return (f"{ns}history/{quote(record['branch'], safe='')}/{quote(record['board'], safe='')}/{stamp[:8]}/"
            f"{stamp}Z-{record['commit'][:12]}-{record['stage']}.json")


def append(store: Store | None, record: dict, spool_dir: Path, ns: str = "") -> str:
    """Write a record to the store (under namespace `ns`), or into the local spool when the store is away;
    '' when it went to the store, 'kept' when spooled, else why it was dropped."""
    data = json.dumps(record, indent=1, sort_keys=True, default=str).encode()
    rel = record_path(record, ns)
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


def _folder(branch: str, board: str | None = None, ns: str = "") -> str:
    out = f"{ns}history/{quote(branch, safe='')}"
    return out + f"/{quote(board, safe='')}" if board else out


def name_parts(name: str) -> tuple[str, str]:
    """(commit prefix, stage) from a record's file name `<time>Z-<commit>-<stage>.json` (('', '') if not one)."""
    parts = name[:-len(".json")].split("-", 2) if name.endswith(".json") else []
    return (parts[1], parts[2]) if len(parts) == 3 else ("", "")


def boards(store: Store, branch: str, ns: str = "") -> list[str]:
    """The boards a branch has records on (one listing)."""
    from urllib.parse import unquote

    return [unquote(n) for n in store.names(_folder(branch, ns=ns))]


def recent(store: Store, branch: str, board: str, ns: str = "", *, stage: str | None = None, last: int = 20,
           keep: Callable[[dict], bool] = lambda record: True, commit: str | None = None) -> History:
    """The newest `last` records per stage that `keep` accepts (of one stage, or of one commit, when given) on
    one branch and board, oldest first. Day folders and file names are time-sorted and names carry commit and
    stage, so this lists the newest days only and reads about `last` records per stage, however long the
    history: it stops at the first day after which every stage it met has enough (a commit's records: at the
    first day without any after some were found)."""
    folder = _folder(branch, board, ns)
    entries = store.names(folder)
    days = [n for n in entries if len(n) == 8 and n.isdigit()]
    flat = [n for n in entries if n.endswith(".json")]  # the layout before day folders: the oldest "day"
    found: dict[str, int] = {}
    hist = History()
    matched_before = False
    for day in [*reversed(days), ""] if flat else reversed(days):
        names = store.names(f"{folder}/{day}") if day else flat
        here = 0
        for name in reversed(names):  # newest first
            c, s = name_parts(name)
            if not s or (stage is not None and s != stage) or found.get(s, 0) >= last:
                continue
            if commit is not None and not (commit.startswith(c) or c.startswith(commit)):
                continue
            record = _parse(store, f"{folder}/{day}/{name}" if day else f"{folder}/{name}", hist, branch, board)
            found.setdefault(s, 0)
            if record is not None and keep(record):
                hist.records.append(record)
                found[s] += 1
                here += 1
        if commit is not None:
            if matched_before and not here:
                break
            matched_before = matched_before or bool(here)
        elif found and all(n >= last for n in found.values()):
            break
    hist.records.sort(key=lambda r: r["start"])
    return hist


def _parse(store: Store, rel: str, hist: History, branch: str | None, board: str | None) -> dict | None:
    """One record read and checked; None (and a line in `hist.skipped`) when it cannot be used."""
    data = store.read_bytes(rel)
    try:
        record = json.loads(data or b"")
    except ValueError:
        hist.skipped.append(f"{rel}: unreadable history record")
        return None
    if not isinstance(record, dict) or not isinstance(record.get("format"), int):
        hist.skipped.append(f"{rel}: not a history record")
        return None
    if record["format"] > RECORD_FORMAT:
        hist.skipped.append(f"{rel}: record format {record['format']} is newer than this hilci reads "
                            f"({RECORD_FORMAT}); skipped")
        return None
    if not isinstance(record.get("measurements"), dict) or not isinstance(record.get("start"), (int, float)):
        hist.skipped.append(f"{rel}: malformed history record")
        return None
    if board and record.get("board") != board:
        return None
    if branch and record.get("branch") != branch:
        hist.skipped.append(f"{rel}: a record of branch {record.get('branch')!r} filed under {branch!r}")
        return None
    return record


def load(store: Store, branch: str | None = None, board: str | None = None, ns: str = "") -> History:
    """Every readable record (oldest first) under namespace `ns`, filtered by branch and board when given (one
    read per record: for `compare` and tools; the run itself reads with `recent`)."""
    prefix = _folder(branch, board, ns) if branch else ns + "history"
    hist = History()
    for item in store.list(prefix):
        if item.rel.endswith(".json"):
            record = _parse(store, item.rel, hist, branch, board)
            if record is not None:
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
