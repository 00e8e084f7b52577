"""The fleet's state, one JSON file per rig: in service or quarantined (and why), failure counts, last health,
last soak, and the rig's lease (`hilci.hil.lease`) with its queue.

The files live in `<lock folder>/fleet/` (`$HILCI_LOCK_DIR`, on a node the device plugin's `/run/hilci/locks`,
which every pod it allocates mounts): the rig device plugin, every test session on the node and `hilci rigs` read
and write the same state. Every change is a read-modify-write under one `fcntl` lock for the whole folder (the
quarantine cap is a fleet-wide count), written to a temporary file and renamed: a reader never sees half a file.

Quarantine is the rig's choice (`quarantine: {after: 3, max_share: 0.5}` in its YAML): after `after` runs in a row
whose failures were the rig's, or `after` failed health probes of the device plugin in a row, it is taken out of
service, unless that would put more than `max_share` of the rigs this folder knows out of service at once (then
it stays in service, and its state says so). A passing probe brings back a rig that failed probes; `hilci rigs
release` any rig.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hilci.hil.locks import lock_dir
from hilci.util.settings import integer, number, settings

FOLDER = "fleet"
MUTEX = ".fleet.lock"
EVENTS_KEPT = 20


@settings
class QuarantineSettings:
    """When a rig is taken out of service: the rig YAML's `quarantine:`."""

    after: int = integer(3, ge=1, le=1000, help="consecutive infrastructure failures (runs or failed health "
                                                 "probes) that take the rig out of service")
    max_share: float = number(0.5, gt=0, le=1, help="at most this share of the fleet's rigs quarantined at once")


class UnknownRig(KeyError):
    """No state for this rig name in the fleet folder."""


def folder(locks: Path | None = None) -> Path:
    path = (locks or lock_dir()) / FOLDER
    path.mkdir(parents=True, exist_ok=True)
    try:
        # the plugin runs as root, each pod's tests as its user: all replace the state files (no sticky bit, which
        # would refuse renaming over another user's file)
        os.chmod(path, 0o777)
    except OSError:
        pass
    return path


def state_path(name: str, where: Path) -> Path:
    return where / f"{name}.json"


def blank(name: str) -> dict[str, Any]:
    return {"rig": name, "path": "", "quarantined": None, "consecutive": 0, "probe_streak": 0, "infrastructure": 0,
            "code": 0,
            "runs": 0, "probes_failed": 0, "last_health": None, "last_soak": None, "lease": None, "waiters": [],
            "quarantine": None, "cap_reached": "", "events": []}


def read(name: str, where: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(state_path(name, where).read_text())
    except (OSError, ValueError):
        return None
    return {**blank(name), **data} if isinstance(data, dict) else None


def read_all(where: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(where.glob("*.json")):
        state = read(path.stem, where)
        if state is not None:
            found[path.stem] = state
    return found


def write(state: dict[str, Any], where: Path) -> None:
    path = state_path(state["rig"], where)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    try:
        os.chmod(tmp, 0o666)
    except OSError:
        pass
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(where: Path) -> Iterator[None]:
    """The fleet folder's mutex: every read-modify-write holds it (they take milliseconds)."""
    fd = os.open(where / MUTEX, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def change(name: str, where: Path, fn: Callable[[dict[str, Any], dict[str, dict[str, Any]]], Any],
           create: bool = True) -> Any:
    """Apply `fn(state, fleet)` to the rig's state under the mutex and write it back; fn's result."""
    with locked(where):
        fleet = read_all(where)
        if name not in fleet and not create:
            raise UnknownRig(name)
        state = fleet.setdefault(name, blank(name))
        result = fn(state, fleet)
        write(state, where)
        return result


def event(state: dict[str, Any], text: str) -> None:
    state["events"] = [*state["events"], {"at": time.time(), "what": text}][-EVENTS_KEPT:]


def register(name: str, path: str, quarantine: QuarantineSettings | None, where: Path) -> None:
    """The rig is part of this fleet (it counts toward the cap) with its quarantine settings."""
    conf = None if quarantine is None else {"after": quarantine.after, "max_share": quarantine.max_share}

    def apply(state, _fleet):
        state["path"], state["quarantine"] = str(path), conf
    change(name, where, apply)


def quarantined(name: str, where: Path) -> str:
    """'' when the rig is in service, else why it is not ('quarantined since ...: REASON')."""
    state = read(name, where)
    q = (state or {}).get("quarantined")
    if not q:
        return ""
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(q["since"]))
    return f"rig {name} is quarantined since {since}: {q['reason']}"


def _failed(state: dict[str, Any], fleet: dict[str, dict[str, Any]], reason: str, streak: str) -> str:
    """One more consecutive infrastructure failure (`streak`: 'consecutive' for runs, 'probe_streak' for the
    device plugin's probes); the line to tell when it quarantines the rig or the cap stops it, else ''."""
    state[streak] += 1
    conf = state.get("quarantine")
    if not conf or state["quarantined"] or state[streak] < conf["after"]:
        return ""
    what = "infrastructure failures" if streak == "consecutive" else "failed health probes"
    why = f"{state[streak]} consecutive {what}, the last: {reason}"
    out = sum(1 for s in fleet.values() if s.get("quarantined"))
    allowed = math.floor(conf["max_share"] * len(fleet) + 1e-9)
    if out + 1 > allowed:
        state["cap_reached"] = (f"rig {state['rig']} stays in service: quarantine cap reached ({out} of "
                                f"{len(fleet)} rigs quarantined, max_share {conf['max_share']:g}); {why}")
        event(state, state["cap_reached"])
        return state["cap_reached"]
    state["quarantined"] = {"reason": why, "since": time.time(), "cause": streak}
    state["cap_reached"] = ""
    event(state, f"quarantined: {why}")
    return f"rig {state['rig']} quarantined: {why}"


def _back(state: dict[str, Any], how: str) -> str:
    state["consecutive"], state["probe_streak"], state["cap_reached"] = 0, 0, ""
    if not state["quarantined"]:
        return ""
    state["quarantined"] = None
    event(state, f"back in service: {how}")
    return f"rig {state['rig']} back in service: {how}"


def record_run(name: str, infrastructure: int, code: int, reason: str, where: Path) -> str:
    """A test session's outcome on the rig: failures that were the rig's and the code's. A run with an
    infrastructure failure counts toward quarantine, any other resets the count (a code failure says the rig
    worked). The line to tell, or ''."""
    def apply(state, fleet):
        state["runs"] += 1
        state["infrastructure"] += infrastructure
        state["code"] += code
        if infrastructure:
            event(state, f"run: {infrastructure} infrastructure failure(s): {reason}")
            return _failed(state, fleet, reason, "consecutive")
        state["consecutive"], state["cap_reached"] = 0, ""
        return ""
    return change(name, where, apply)


def record_health(name: str, problem: str, by: str, where: Path, counts: bool = True, asked: bool = False) -> str:
    """A health probe's verdict ('' = every device answered), for `hilci rigs`. When it `counts` (the device
    plugin's probes; a session's start-up check only notes it, its run counts), failed probes in a row count
    toward quarantine, and a passing one ends that streak and brings the rig back from a quarantine that failed
    probes caused. A quarantine that runs caused (devices that answer a probe and fail under test) stays until
    `hilci rigs release` or a check someone `asked` for (`hilci rigs check`). The line to tell, or ''."""
    def apply(state, fleet):
        state["last_health"] = {"at": time.time(), "ok": not problem, "reason": problem, "by": by}
        if not counts:
            return ""
        if not problem:
            state["probe_streak"] = 0
            q = state["quarantined"]
            if q and (asked or q.get("cause", "probe_streak") == "probe_streak"):
                return _back(state, f"health probe passed ({by})")
            return ""
        state["probes_failed"] += 1
        return _failed(state, fleet, f"health probe ({by}): {problem}", "probe_streak")
    return change(name, where, apply)


def release(name: str, who: str, where: Path) -> str:
    """`hilci rigs release`: back in service; UnknownRig when the folder has no such rig."""
    def apply(state, _fleet):
        return _back(state, f"released by {who}") or f"rig {name} was in service"
    return change(name, where, apply, create=False)


def note_soak(name: str, summary: dict[str, Any], where: Path) -> None:
    """A soak's result ({'at', 'verdict', ...}) for `hilci rigs` ('last soak')."""
    def apply(state, _fleet):
        state["last_soak"] = {"at": time.time(), **summary}
    change(name, where, apply)
