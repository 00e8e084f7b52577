"""One run's use of the store, for `hilci run` and `hilci stage`: the cache, this run's history records and the
regression gates, each its own object taking the typed config; the session opens the store once and ties them.

Opening probes the store once: a refusal is a usage error (exit 2, the URL without credentials); silence makes
the run go on without it (every stage a miss, records spooled locally) and says so in `notes`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from hilci.errors import UsageError
from hilci.pipeline.config import Config
from hilci.pipeline.model import Pipeline, Stage
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
from hilci.store.cache import Hit, StageCache, drop_entry
from hilci.store.keys import key_for
from hilci.store.runhistory import TREND_RUNS, RunHistory
from hilci.store.trust import Trust, trust_for
from hilci.util.provenance import provenance


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
    config: Config
    store: Store | None
    cache: StageCache | None
    history: RunHistory
    notes: list[str] = field(default_factory=list)
    judgements: list[gates.Judgement] = field(default_factory=list)
    gating: bool = True  # regressions fail the run; only with a configured (shared) store, where history is CI's
    trust: Trust = field(default_factory=lambda: Trust("local", ("*",)))
    _memo: dict = field(default_factory=dict)

    @classmethod
    def open(cls, root: Path, pipeline: Pipeline, config: Config, use_cache: bool = True,
             url: str | None = None) -> StoreSession:
        """The session on `url` when given (a caller's own store wins over $HILCI_STORE), else the configured
        store, else the repository's `.hilci-cache`."""
        gating = url is not None or configured_url(root, config) is not None
        url = url or store_url(root, config)
        origin = provenance(root).as_dict()
        # a shared store splits trusted from untrusted writers; the repository's own folder is the user's alone
        trust = trust_for(origin["branch"], config) if gating else Trust(origin["branch"], ("*",))

        def session(store: Store | None, note: str = "") -> StoreSession:
            cache = StageCache(root, store, trust) if store is not None and use_cache else None
            made = cls(root, pipeline, config, store, cache, RunHistory(root, store, trust, origin),
                       gating=gating, trust=trust)
            made.notes += [note] if note else []
            return made

        missing = missing_credentials(url)
        if missing and not config.store_settings.store_optional:
            raise UsageError(missing)
        if missing:  # the user said the store is optional: a note, every stage a miss
            return session(None, f"store unavailable: {missing.split('; set them')[0]} (store_optional: true)")
        store = Store(url)
        try:
            store.probe()
        except StoreUnavailable as exc:
            store.close()
            return session(None, f"store unavailable: {exc}; stages run as misses, history is kept locally")
        sent = history.flush_spool(store, root / LOCAL_DIR) if not store.local else 0
        return session(store, f"{sent} history record(s) kept while the store was away were sent" if sent else "")

    @property
    def origin(self) -> dict:
        return self.history.origin

    @property
    def records(self) -> list[dict]:
        return self.history.records

    @records.setter
    def records(self, value: list[dict]) -> None:
        self.history.records = value

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
        return key_for(self.root, self.pipeline, self.config.plain(), stage, rig, board, self._memo)

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

    # -- history and gates ----------------------------------------------------------------------------------
    def record(self, stage: Stage, **fields) -> None:
        """This stage's history record (see `RunHistory.record`)."""
        self.history.record(stage, **fields)

    def adopt_build(self) -> None:
        self.history.adopt_build()

    def trends(self, runs: int = TREND_RUNS) -> list[dict]:
        return self.history.trends(runs)

    def judge(self) -> list[gates.Judgement]:
        """This run's measured records against the target branch's green runs on the same board. A regressed
        record is rewritten as such and its cache entry dropped, so the next run measures again."""
        if self.store is None:
            return []
        regression_gates = gates.RegressionGates(self.store, self.trust, self.config.gates, self.origin["target"])
        out: list[gates.Judgement] = []
        for record in self.history.measured():
            try:
                judged = regression_gates.judge(record)
            except StoreUnavailable as exc:
                self.notes.append(f"regression gates skipped: {exc}")
                break
            out += judged
            regressed = [j.name for j in judged if j.regressed]
            if regressed:
                self.history.mark_regressed(record, regressed)
                self._drop_entry(record)
        self.judgements = out
        return out

    def _drop_entry(self, record: dict) -> None:
        if record.get("cache_key") and drop_entry(self.store, record["stage"], record["cache_key"],
                                                  self.trust.write_ns):
            self.notes.append(f"{record['stage']}: cache entry {record['cache_key'][:12]} dropped: its "
                              "measurements regressed, the next run measures again")

    def gate_cases(self) -> list:
        """The regression gates as testcases: a failure per regression, skipped when history is too short."""
        return gates.as_cases(self.judgements, self.gating)

    def gates_junit(self, path: Path) -> Path | None:
        """reports/junit/regressions.xml: one testcase per gated measurement (failures are regressions)."""
        cases = self.gate_cases()
        if not cases:
            return None
        return junit.write_suite(path, "hilci.regressions", cases, [("hilci.stage", "regressions")])

    def stats(self) -> dict:
        """What this run cost the store: seconds per stage (lookup, restore, save) and bytes uploaded."""
        return {"url": self.display, "available": self.store is not None and bool(self.cache is None or
                                                                                   self.cache.usable),
                "seconds": dict(self.cache.timings) if self.cache else {},
                "uploaded_bytes": self.store.uploaded_bytes if self.store else 0}

    def close(self) -> list[str]:
        """Notes for the summary: discarded entries, an unavailable store, spooled records."""
        notes = list(self.notes) + self.history.notes
        if self.cache and self.cache.unavailable:  # first: the one note that says why and what it cost
            notes.insert(0, f"store unavailable during the run: {self.cache.unavailable}")
        if self.history.spooled:
            notes.append(self.history.spool_note())
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
