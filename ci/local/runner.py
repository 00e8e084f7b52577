"""The local runner (`hilci run`): each stage as a `hilci stage NAME` subprocess, in order, with the stage cache.

It stops at the first stage that does not pass and reports the rest as skipped with the reason; a stage that
crashes, times out or is aborted still gets a testcase carrying the error and its log tail. Whatever happens,
the JUnit gathered so far, the merged reports/junit.xml and reports/index.html are written.

Each job is its own piece: the order and skip policy (`schedule`), the stage cache (`cached`), the supervised
stage process and what its exit means (`stageprocess`), the JUnit for a stage that wrote none (`substitute`)
and the reports (`reports`); this class runs them in turn and handles an abort.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hilci.errors import UsageError
from hilci.local import substitute
from hilci.local.cached import Consulted, StageCache
from hilci.local.progress import Progress
from hilci.local.reports import write_run_reports
from hilci.local.schedule import Schedule, select_stages
from hilci.local.stageprocess import (
    STAGE_ABORT_GRACE_S,
    RunAborted,
    StageProcess,
    count_inconclusive,
    outcome_of,
)
from hilci.local.substitute import LOG_TAIL_LINES, log_tail
from hilci.pipeline.model import Pipeline, Stage, StageOutcome, Status
from hilci.stage.run import EXIT_ERROR, EXIT_FAILED, EXIT_OK, junit_path, load_config
from hilci.store.keys import rig_is_emulated  # noqa: F401 - moved there
from hilci.store.session import StoreSession

__all__ = ["LocalRunner", "RunOptions", "select_stages", "count_inconclusive", "log_tail", "LOG_TAIL_LINES",
           "STAGE_ABORT_GRACE_S"]

PASSED, FAILED, ERROR, CACHED, SKIPPED = Status.PASSED, Status.FAILED, Status.ERROR, Status.CACHED, Status.SKIPPED


@dataclass
class RunOptions:
    only: tuple[str, ...] = ()
    start_from: str | None = None
    rig: Path | None = None
    use_cache: bool = True
    pipeline_spec: str = ""  # "module:attr" handed to the children; "" = the default definition
    env: dict[str, str] = field(default_factory=dict)


class LocalRunner:
    """Runs the selected stages of one pipeline in `root` and writes the reports."""

    def __init__(self, root: Path, pipeline: Pipeline, options: RunOptions, progress: Progress | None = None):
        self.root = root
        self.pipeline = pipeline.validate(root)
        self.options = options
        self.progress = progress or Progress.for_stream(sys.stdout)
        self.config = load_config(root, pipeline)
        self.store = StoreSession.open(root, self.pipeline, self.config, use_cache=options.use_cache)
        self.cache = StageCache(self.store)
        self.process = StageProcess(root, env=options.env, pipeline_spec=options.pipeline_spec)
        self.outcomes: list[StageOutcome] = []
        self._t0 = 0.0
        self._aborting = False

    # -- the run -------------------------------------------------------------------------------------------
    def run(self) -> int:
        schedule = Schedule(select_stages(self.pipeline, self.options.only, self.options.start_from))
        self._check_rig(schedule.stages)
        for name in ("junit", "logs"):
            (self.root / "reports" / name).mkdir(parents=True, exist_ok=True)
        self._t0 = time.perf_counter()
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        aborted: RunAborted | None = None
        try:
            while (stage := schedule.next()) is not None:
                try:
                    outcome = self._run_one(stage)
                except RunAborted as exc:
                    aborted = exc
                    outcome = self._aborted(stage, exc)
                self.outcomes.append(outcome)
                for later, why in schedule.finished(stage, outcome, str(aborted) if aborted else ""):
                    self.outcomes.append(self._skipped(later, why))
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            regressions = [j for j in self.store.judge() if j.regressed] if not aborted else []
            self.write_reports()
        word = "regression" if self.store.gating else "regression (reported, not gated: no shared store)"
        notes = self.store.close() + [f"{word}: {j.message}" for j in regressions] + [
            f"regression inconclusive: {j.message}" for j in self.store.judgements if j.status == "inconclusive"]
        regressions = regressions if self.store.gating else []
        self.progress.summary(self.outcomes, notes, self.root / "reports" / "junit")
        if aborted:
            return 128 + aborted.signum
        return self.exit_code(regressions=bool(regressions))

    def exit_code(self, regressions: bool = False) -> int:
        bad = [o for o in self.outcomes if o.status in (FAILED, ERROR)]
        if not bad:
            return EXIT_FAILED if regressions else EXIT_OK
        return EXIT_FAILED if all(o.status == FAILED for o in bad) else EXIT_ERROR

    def _check_rig(self, stages: list[Stage]) -> None:
        rig = self.options.rig
        if rig is not None and any(s.matrix for s in stages) and not (self.root / rig).is_file():
            raise UsageError(f"rig file {rig} does not exist")

    def _on_signal(self, signum: int, _frame) -> None:
        if self._aborting:  # a second Ctrl-C must not interrupt the clean-up of the first
            return
        self._aborting = True
        raise RunAborted(signum)

    # -- one stage -----------------------------------------------------------------------------------------
    def _run_one(self, stage: Stage) -> StageOutcome:
        start = self._elapsed()
        rig = self._rig_for(stage)
        rig_file = self.root / rig if rig is not None else None
        found = self.cache.consult(stage, rig_file)
        if found.hit is not None:
            return self._cached(stage, found, start, rig_file)
        wall_start = time.time()
        outcome = self._execute(stage, rig, start)
        outcome.cache_key = found.key
        self.cache.keep(stage, found, outcome, wall_start, self._junit(stage), self._log_path(stage), rig_file)
        return outcome

    def _cached(self, stage: Stage, found: Consulted, start: float, rig_file: Path | None) -> StageOutcome:
        reason = self.cache.restore(stage, found, self._junit(stage), self._log_path(stage))
        outcome = StageOutcome(stage.name, CACHED, start, self._elapsed() - start, reason=reason, exit_code=0,
                               cache_key=found.key, log=self._log_rel(stage))
        self.progress.finished(outcome)
        self.cache.record_cached(stage, outcome, self._junit(stage), rig_file)
        return outcome

    def _execute(self, stage: Stage, rig: Path | None, start: float) -> StageOutcome:
        junit_file, log_file = self._junit(stage), self._log_path(stage)
        junit_file.unlink(missing_ok=True)  # a stale file must never pass for this run's result
        self.progress.started(stage)
        exited = self.process.run(stage, rig, log_file, self.progress.tick_s,
                                  lambda inside: self.progress.tick(stage, self._elapsed() - start, inside))
        duration = self._elapsed() - start
        outcome = outcome_of(self.root, stage, exited, junit_file, start, duration, self._log_rel(stage))
        if exited.timed_out or not junit_file.is_file():  # the stage wrote no JUnit to go by
            substitute.error_junit(junit_file, log_file, stage, outcome.reason, duration)
        self.progress.finished(outcome)
        return outcome

    # -- outcomes that never ran a child to its end ------------------------------------------------------
    def _aborted(self, stage: Stage, exc: RunAborted) -> StageOutcome:
        self.process.stop()
        start = self.outcomes[-1].start_s + self.outcomes[-1].duration_s if self.outcomes else 0.0
        duration = self._elapsed() - start
        reason = substitute.aborted_junit(self._junit(stage), self._log_path(stage), stage, f"aborted by {exc}",
                                          duration)
        outcome = StageOutcome(stage.name, ERROR, start, duration, reason, 128 + exc.signum,
                               log=self._log_rel(stage))
        self.progress.finished(outcome)
        return outcome

    def _skipped(self, stage: Stage, why: str) -> StageOutcome:
        substitute.skipped_junit(self._junit(stage), stage, why)
        outcome = StageOutcome(stage.name, SKIPPED, reason=why)
        self.progress.finished(outcome)
        return outcome

    # -- paths and reports --------------------------------------------------------------------------------
    def _elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def _rig_for(self, stage: Stage) -> Path | None:
        return self.options.rig if stage.matrix else None

    def _junit(self, stage: Stage) -> Path:
        return junit_path(self.root, stage)

    def _log_path(self, stage: Stage) -> Path:
        return self.root / "reports" / "logs" / f"{stage.name}.log"

    def _log_rel(self, stage: Stage) -> str:
        return str(self._log_path(stage).relative_to(self.root))

    def write_reports(self) -> None:
        write_run_reports(self.root, self.pipeline, self.outcomes, self.store)
