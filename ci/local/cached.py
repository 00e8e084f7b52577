"""The runner's use of the stage cache: before a stage, its key and a hit restored (outputs, the JUnit it passed
with, its log); after it, a passing run saved and every judged run recorded in the history."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hilci.pipeline.model import Stage, StageOutcome, Status
from hilci.store.keys import cacheable_on
from hilci.store.place import LOCAL
from hilci.store.session import StoreSession


@dataclass
class Consulted:
    """What the cache said about a stage: its key ("" when the stage is not cached), the key's parts, a hit."""

    key: str = ""
    parts: dict = field(default_factory=dict)
    hit: Any = None


class StageCache:
    """The store's stage cache and history, as the runner consults them around each stage."""

    def __init__(self, store: StoreSession):
        self.store = store

    def cacheable(self, stage: Stage, rig_file: Path | None) -> bool:
        return self.store.cache is not None and cacheable_on(stage, rig_file)

    def consult(self, stage: Stage, rig_file: Path | None) -> Consulted:
        if not self.cacheable(stage, rig_file):
            return Consulted()
        key, parts = self.store.key(stage, rig_file, place=LOCAL)  # `hilci run` runs every stage right here
        return Consulted(key, parts, self.store.lookup(stage, key))

    def restore(self, stage: Stage, found: Consulted, junit_file: Path, log_file: Path) -> str:
        """Put a hit's outputs back; its JUnit is the one it passed with, marked as cached from its commit and
        build. The reason the summary shows."""
        hit = found.hit
        self.store.cache.restore(hit, stage)
        self.store.write_cached_junit(hit, junit_file)
        log_file.write_bytes(f"{hit.origin}: restored from {self.store.display} (entry {hit.key[:12]})\n"
                             "--- log of the run that produced it ---\n".encode() + hit.log)
        return f"{hit.origin}; inputs unchanged (key {found.key[:12]})"

    def record_cached(self, stage: Stage, outcome: StageOutcome, junit_file: Path, rig_file: Path | None) -> None:
        self.store.record(stage, status=Status.CACHED, start=time.time(), duration_s=outcome.duration_s,
                          key=outcome.cache_key, junit_file=junit_file, rig=rig_file, cached=True)

    def keep(self, stage: Stage, found: Consulted, outcome: StageOutcome, wall_start: float, junit_file: Path,
             log_file: Path, rig_file: Path | None) -> None:
        """After a run: save a pass under its key, record a pass or a failure in the history."""
        if self.cacheable(stage, rig_file) and outcome.status == Status.PASSED:
            self.store.save(stage, found.key, found.parts, junit_file, log_file)
        if outcome.status in (Status.PASSED, Status.FAILED, Status.NOT_BUILT):
            self.store.record(stage, status=outcome.status, start=wall_start, duration_s=outcome.duration_s,
                              key=found.key, junit_file=junit_file, rig=rig_file)
