"""One run's use of the store, for `hilci run` and `hilci stage`: keys, cache, history records, gates, trends.

Opening probes the store once: a refusal is a usage error (exit 2, the URL without credentials); silence makes
the run go on without it (every stage a miss, records spooled locally) and says so in `notes`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hilci.errors import UsageError
from hilci.pipeline.model import Pipeline, Stage
from hilci.pipeline.sections import GateSettings
from hilci.results import junit
from hilci.store import gates, history
from hilci.store.backend import (
    ENV_DOWN,
    LOCAL_DIR,
    Store,
    StoreUnavailable,
    configured_url,
    display_url,
    missing_credentials,
    store_url,
)
from hilci.store.cache import Hit, StageCache, entry_path
from hilci.store.keys import key_for, rig_is_emulated
from hilci.store.trust import Trust, trust_for
from hilci.util import settings as typed
from hilci.util.provenance import environment_facts, provenance

TREND_RUNS = 20


def board_label(stage: Stage, board: str, rig: Path | None) -> str:
    """The board a record is filed under: the Jenkins board, the rig locally, else the pod or 'local'."""
    if board and board != "local":
        return board
    if stage.matrix and rig is not None:
        return rig.stem
    return stage.pod if os.environ.get("BUILD_NUMBER") else "local"


def _say_in_every_case(path: Path, text: str) -> None:
    """Put `text` first in every testcase's system-out, which Jenkins shows beside each result."""
    import xml.etree.ElementTree as ET

    tree = ET.parse(path)
    for case in tree.getroot().iter("testcase"):
        out = case.find("system-out")
        if out is None:
            out = ET.SubElement(case, "system-out")
        out.text = text + ("\n" + out.text if out.text else "")
    tree.write(path, encoding="utf-8", xml_declaration=True)


@dataclass
class StoreSession:
    root: Path
    pipeline: Pipeline
    config: dict
    store: Store | None
    cache: StageCache | None
    origin: dict
    notes: list[str] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    judgements: list[gates.Judgement] = field(default_factory=list)
    spooled: int = 0
    gating: bool = True  # regressions fail the run; only with a configured (shared) store, where history is CI's
    trust: Trust = field(default_factory=lambda: Trust("local", ("*",)))
    _memo: dict = field(default_factory=dict)

    @classmethod
    def open(cls, root: Path, pipeline: Pipeline, config: dict, use_cache: bool = True,
             url: str | None = None) -> StoreSession:
        """The session on `url` when given (a caller's own store wins over $HILCI_STORE), else the configured
        store, else the repository's `.hilci-cache`."""
        gating = url is not None or configured_url(root, config) is not None
        url = url or store_url(root, config)
        origin = provenance(root).as_dict()
        # a shared store splits trusted from untrusted writers; the repository's own folder is the user's alone
        trust = trust_for(origin["branch"], config) if gating else Trust(origin["branch"], ("*",))
        missing = missing_credentials(url)
        if missing and not config.get("store_optional"):
            raise UsageError(missing)
        if missing:  # the user said the store is optional: a note, every stage a miss
            session = cls(root, pipeline, config, None, None, origin, gating=gating, trust=trust)
            session.notes.append(f"store unavailable: {missing.split('; set them')[0]} (store_optional: true)")
            return session
        store = Store(url)
        try:
            store.probe()
        except StoreUnavailable as exc:
            session = cls(root, pipeline, config, None, None, origin, gating=gating, trust=trust)
            session.notes.append(f"store unavailable: {exc}; stages run as misses, history is kept locally")
            store.close()
            return session
        sent = history.flush_spool(store, root / LOCAL_DIR) if not store.local else 0
        session = cls(root, pipeline, config, store, StageCache(root, store, trust) if use_cache else None, origin,
                      gating=gating, trust=trust)
        if sent:
            session.notes.append(f"{sent} history record(s) kept while the store was away were sent")
        return session

    @property
    def display(self) -> str:
        return self.store.display if self.store else display_url(store_url(self.root, self.config))

    def child_env(self) -> dict[str, str]:
        """What a stage subprocess needs to know of this run's store: that it is down, when it is."""
        down = self.store.down if self.store is not None else next(
            (n for n in self.notes if n.startswith("store unavailable")), "")
        return {ENV_DOWN: down} if down else {}

    # -- the stage cache ------------------------------------------------------------------------------------
    def key(self, stage: Stage, rig: Path | None, board: str = "local") -> tuple[str, dict]:
        return key_for(self.root, self.pipeline, self.config, stage, rig, board, self._memo)

    def lookup(self, stage: Stage, key: str) -> Hit | None:
        return self.cache.lookup(stage, key) if self.cache else None

    def save(self, stage: Stage, key: str, parts: dict, junit_file: Path, log: Path) -> None:
        if self.cache:
            self.cache.save(stage, key, parts, junit_file, log, self.origin)

    def write_cached_junit(self, hit: Hit, out: Path) -> None:
        """The JUnit the stage passed with, marked as cached from the commit and build that produced it."""
        src = out.with_name(out.stem + ".cached-src.xml")
        src.write_bytes(hit.junit)
        try:
            junit.with_suite_properties(src, out, [
                ("hilci.cached", "true"), ("hilci.cached_from", hit.origin),
                ("hilci.cached_commit", hit.record["commit"]), ("hilci.cached_build", hit.record["build"]),
                ("hilci.cached_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(hit.created)))])
        finally:
            src.unlink(missing_ok=True)
        _say_in_every_case(out, f"{hit.origin}: restored from the store, not run in this build")

    # -- history --------------------------------------------------------------------------------------------
    def record(self, stage: Stage, *, status: str, start: float, duration_s: float, key: str,
               junit_file: Path | None, rig: Path | None, board: str = "local", cached: bool = False) -> None:
        """Append this stage's record; a restored stage's measurements are kept (`cached`) but out of trends,
        baselines and gates, which would otherwise count one measurement twice."""
        measurements = {} if junit_file is None else history.measurements_of(junit_file)
        record = history.make_record(origin=self.origin, board=board_label(stage, board, rig),
                                     rig=str(rig) if rig else "", stage=stage.name, start=start,
                                     duration_s=duration_s, status=str(status), key=key,
                                     measurements=measurements, environment=environment_facts(), cached=cached)
        record["emulated"] = bool(stage.matrix and rig_is_emulated(rig))
        record["failures"] = {} if junit_file is None else history.failures_of(junit_file)
        note = history.append(self.store, record, self.root / LOCAL_DIR, self.trust.write_ns)
        if note == "kept":
            self.spooled += 1
        elif note:
            self.notes.append(note)
        self.records.append(record)

    # -- regression gates -----------------------------------------------------------------------------------
    def judge(self) -> list[gates.Judgement]:
        """This run's measured records against the target branch's green runs on the same board."""
        if self.store is None:
            return []
        settings = typed.build(GateSettings, self.config.get("regressions"), file="hilci.yaml",
                               prefix="regressions.")
        branch = self.origin["target"]
        out: list[gates.Judgement] = []
        for record in self.records:
            if record["cached"] or not record["measurements"]:  # judged once, when it was measured
                continue
            this = (record.get("commit"), record.get("build"))
            try:  # the baseline's window of green runs, read newest first: O(window), not O(history)
                base = history.recent(self.store, branch, record["board"], self.trust.history_ns(branch),
                                      stage=record["stage"], last=settings.window,
                                      keep=lambda r, stage=record["stage"], this=this:
                                      gates.baseline_for([r], stage, this) != [])
            except StoreUnavailable as exc:
                self.notes.append(f"regression gates skipped: {exc}")
                return out
            judged = gates.judge_record(record, base.records, branch, settings)
            if record.get("emulated"):  # an emulated rig's timing follows the shared host: reported, not gated
                for j in judged:
                    if j.regressed and gates.is_timing(j.unit):
                        j.status, j.message = "inconclusive", f"{j.message}: emulated rig, not gated"
            out += judged
            if any(j.regressed for j in judged):  # a regressed run is not green: never part of a baseline,
                record["status"] = "regressed"   # and its entry goes, so the next run measures again
                record["regressed"] = [j.name for j in judged if j.regressed]
                history.append(self.store, record, self.root / LOCAL_DIR, self.trust.write_ns)
                self._drop_entry(record)
        self.judgements = out
        return out

    def adopt_build(self) -> None:
        """Take this build's records from the store (each pod wrote its own): the Jenkins report stage."""
        if self.store is None:
            return
        try:
            branch, ns = self.origin["branch"], self.trust.write_ns
            hist = history.History()
            for board in history.boards(self.store, branch, ns):  # only this commit's records are read
                hist.records += history.recent(self.store, branch, board, ns, last=10_000,
                                               commit=self.origin["commit"][:12]).records
        except StoreUnavailable as exc:
            self.notes.append(f"regression gates skipped: {exc}")
            return
        self.records = [r for r in hist.records if r.get("commit") == self.origin["commit"]
                        and r.get("build") == self.origin["build"]]

    def _drop_entry(self, record: dict) -> None:
        if not record.get("cache_key") or self.store is None:
            return
        try:
            self.store.delete(entry_path(record["stage"], record["cache_key"], self.trust.write_ns))
        except StoreUnavailable:
            return
        self.notes.append(f"{record['stage']}: cache entry {record['cache_key'][:12]} dropped: its measurements "
                          "regressed, the next run measures again")

    def gate_cases(self) -> list:
        """The regression gates as testcases: a failure per regression, skipped when history is too short."""
        cases = []
        for j in self.judgements:
            if j.status == "not-gated":
                continue
            kw: dict[str, Any] = {}
            if j.regressed and self.gating:
                kw["failure"] = j.message
            elif j.regressed:
                kw["skipped"] = f"not gated (no shared store): {j.message}"
            elif j.status == "inconclusive":
                kw["skipped"] = j.message
            elif j.status == "too-little-history":
                kw["skipped"] = j.message
            cases.append(junit.make_case(j.name, "hilci.regressions", properties=[("regression.baseline",
                         "" if j.baseline is None else f"{j.baseline:g}"), ("regression.runs", str(j.runs))],
                         stdout=j.message, **kw))
        return cases

    def gates_junit(self, path: Path) -> Path | None:
        """reports/junit/regressions.xml: one testcase per gated measurement (failures are regressions)."""
        cases = self.gate_cases()
        if not cases:
            return None
        return junit.write_suite(path, "hilci.regressions", cases, [("hilci.stage", "regressions")])

    def trends(self, runs: int = TREND_RUNS) -> list[dict]:
        """Each measurement of this run over the last `runs` runs on the same board, the current one marked."""
        if self.store is None:
            return []
        out = []
        for record in self.records:
            if record["cached"] or not record["measurements"]:
                continue
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

    def rig_health(self, last: int = TREND_RUNS) -> list[dict]:
        """Each rig's pass rate, infrastructure-failure rate and soaks over its last runs on this branch
        (`hilci.store.righealth`); [] without a store."""
        from hilci.store.righealth import rig_health

        if self.store is None:
            return []
        branch = self.origin["branch"]
        soak = self.config.get("soak") if isinstance(self.config.get("soak"), dict) else {}
        return rig_health(self.store, branch, self.trust.history_ns(branch), stage=soak.get("stage", "hil"),
                          last=last)

    def stats(self) -> dict:
        """What this run cost the store: seconds per stage (lookup, restore, save) and bytes uploaded."""
        return {"url": self.display, "available": self.store is not None and bool(self.cache is None or
                                                                                   self.cache.usable),
                "seconds": dict(self.cache.timings) if self.cache else {},
                "uploaded_bytes": self.store.uploaded_bytes if self.store else 0}

    def close(self) -> list[str]:
        """Notes for the summary: discarded entries, an unavailable store, spooled records."""
        notes = list(self.notes)
        if self.cache and self.cache.unavailable:  # first: the one note that says why and what it cost
            notes.insert(0, f"store unavailable during the run: {self.cache.unavailable}")
        if self.spooled:
            notes.append(f"{self.spooled} history record(s) kept in {self.root / LOCAL_DIR / history.SPOOL} "
                         "until the store is back")
        if self.cache:
            notes = self.cache.discarded + notes
        if self.store:
            self.store.close()
        return _said_once(notes, self.store.down if self.store else "")


def _said_once(notes: list[str], reason: str) -> list[str]:
    """The notes with `reason` (why the store went down, which every call it failed repeats) given in full once;
    later notes say 'the store is down' instead."""
    if not reason:
        return notes
    out, said = [], False
    for note in notes:
        if reason in note:
            note = note.replace(reason, "the store is down") if said else note
            said = True
        out.append(note)
    return out
