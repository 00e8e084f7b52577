"""This run's history records: written as each stage ends, marked when a gate finds a regression, adopted from
the store by the Jenkins report stage (each pod wrote its own), and read back as trends.

One job: the records. Judging them is `hilci.store.gates.RegressionGates`; the cache entries they came from are
`hilci.store.cache`'s; `hilci.store.session.StoreSession` ties the three together for a run.
"""

from __future__ import annotations

import os
from pathlib import Path

from hilci.pipeline.model import Stage
from hilci.store import history
from hilci.store.backend import LOCAL_DIR, Store, StoreUnavailable
from hilci.store.keys import rig_is_emulated
from hilci.store.trust import Trust
from hilci.util.provenance import environment_facts

TREND_RUNS = 20


def board_label(stage: Stage, board: str, rig: Path | None) -> str:
    """The board a record is filed under: the Jenkins board, the rig locally, else the pod or 'local'."""
    if board and board != "local":
        return board
    if stage.matrix and rig is not None:
        return rig.stem
    return stage.pod if os.environ.get("BUILD_NUMBER") else "local"


class RunHistory:
    """The records of one run (one per stage and board), in the store under the build's own namespace, or
    spooled beside the repository while the store is away."""

    def __init__(self, root: Path, store: Store | None, trust: Trust, origin: dict) -> None:
        self.root = root
        self.store = store
        self.trust = trust
        self.origin = origin
        self.records: list[dict] = []
        self.spooled = 0  # records kept locally until the store is back
        self.notes: list[str] = []

    @property
    def spool_dir(self) -> Path:
        return self.root / LOCAL_DIR

    def record(self, stage: Stage, *, status: str, start: float, duration_s: float, key: str,
               junit_file: Path | None, rig: Path | None, board: str = "local", cached: bool = False) -> dict:
        """Append this stage's record; a restored stage's measurements are kept (`cached`) but out of trends,
        baselines and gates, which would otherwise count one measurement twice."""
        measurements = {} if junit_file is None else history.measurements_of(junit_file)
        record = history.make_record(origin=self.origin, board=board_label(stage, board, rig),
                                     rig=str(rig) if rig else "", stage=stage.name, start=start,
                                     duration_s=duration_s, status=str(status), key=key,
                                     measurements=measurements, environment=environment_facts(), cached=cached)
        record["emulated"] = bool(stage.matrix and rig_is_emulated(rig))
        record["failures"] = {} if junit_file is None else history.failures_of(junit_file)
        self._write(record)
        self.records.append(record)
        return record

    def mark_regressed(self, record: dict, names: list[str]) -> None:
        """Rewrite `record` as regressed: never part of a baseline, and listed as such by `hilci history`."""
        record["status"] = "regressed"
        record["regressed"] = list(names)
        self._write(record)

    def _write(self, record: dict) -> None:
        note = history.append(self.store, record, self.spool_dir, self.trust.write_ns)
        if note == "kept":
            self.spooled += 1
        elif note:
            self.notes.append(note)

    def adopt_build(self) -> None:
        """Take this build's records from the store (each pod wrote its own): the Jenkins report stage."""
        if self.store is None:
            return
        try:
            branch, ns = self.origin["branch"], self.trust.write_ns
            found: list[dict] = []
            for board in history.boards(self.store, branch, ns):  # only this commit's records are read
                found += history.recent(self.store, branch, board, ns, last=10_000,
                                        commit=self.origin["commit"][:12]).records
        except StoreUnavailable as exc:
            self.notes.append(f"regression gates skipped: {exc}")
            return
        self.records = [r for r in found if r.get("commit") == self.origin["commit"]
                        and r.get("build") == self.origin["build"]]

    def measured(self) -> list[dict]:
        """The records this run measured itself (restored ones were judged when they were measured)."""
        return [r for r in self.records if not r["cached"] and r["measurements"]]

    def trends(self, runs: int = TREND_RUNS) -> list[dict]:
        """Each measurement of this run over the last `runs` runs on the same board, the current one marked."""
        if self.store is None:
            return []
        out = []
        for record in self.measured():
            try:  # the last `runs` measured runs of this stage on this board: O(runs) reads
                same = history.recent(self.store, record["branch"], record["board"],
                                      self.trust.history_ns(record["branch"]), stage=record["stage"], last=runs,
                                      keep=lambda r: not r.get("cached")).records
            except StoreUnavailable:
                return out
            for name, fields in sorted(record["measurements"].items()):
                points = [(r, v) for r, v in history.values(same, name)][-runs:]
                if len(points) < 2:
                    continue
                out.append({"name": name, "unit": str(fields.get("unit") or ""), "board": record["board"],
                            "branch": record["branch"],
                            "points": [{"commit": r["commit"][:7], "value": v,
                                        "current": r["start"] == record["start"] and r["stage"] == record["stage"]}
                                       for r, v in points]})
        return out

    def spool_note(self) -> str:
        return (f"{self.spooled} history record(s) kept in {self.spool_dir / history.SPOOL} until the store is back"
                if self.spooled else "")
