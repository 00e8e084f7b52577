"""The local runner (`hilci run`): each stage as a `hilci stage NAME` subprocess, with the stage cache.

A stage starts as soon as the stages it needs have passed or were restored from the cache, so independent
stages run side by side (at most `--jobs` at once); a stage whose need did not pass is skipped with the reason
and the stages that do not depend on it still run; a stage that crashes, times out or is aborted still gets a
testcase carrying the error and its log tail. Whatever happens, the JUnit gathered so far, the merged
reports/junit.xml and reports/index.html are written.

Each job is its own piece: the order and skip policy (`schedule`), the stage cache (`cached`), the supervised
stage process and what its exit means (`stageprocess`), the JUnit for a stage that wrote none (`substitute`)
and the reports (`reports`); this class polls the running stages from its main thread (the one that gets
signals) and, on an abort, forwards it to every running stage at once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hilci.errors import UsageError
from hilci.local import substitute
from hilci.local.cached import Consulted, StageCache
from hilci.local.progress import Progress
from hilci.local.reports import write_run_reports
from hilci.local.schedule import Schedule, default_jobs, select_stages
from hilci.local.stageprocess import (
    STAGE_ABORT_GRACE_S,
    Exited,
    RunAborted,
    RunningStage,
    StageProcess,
    count_inconclusive,
    outcome_of,
)
from hilci.local.substitute import LOG_TAIL_LINES, log_tail
from hilci.pipeline.model import Pipeline, Stage, StageOutcome, Status
from hilci.stage.run import EXIT_ERROR, EXIT_FAILED, EXIT_INFRASTRUCTURE, EXIT_OK, junit_path, load_config
from hilci.store.keys import rig_is_emulated  # noqa: F401 - moved there
from hilci.store.session import StoreSession

__all__ = ["LocalRunner", "RunOptions", "select_stages", "count_inconclusive", "log_tail", "LOG_TAIL_LINES",
           "STAGE_ABORT_GRACE_S"]

PASSED, FAILED, ERROR, CACHED, SKIPPED = Status.PASSED, Status.FAILED, Status.ERROR, Status.CACHED, Status.SKIPPED


POLL_S = 0.02  # with several stages running, how often each is looked at


@dataclass
class Running:
    """A stage whose child runs: when it started, what the cache said, where its rig is."""

    stage: Stage
    run: RunningStage
    start: float  # seconds since the run started
    wall_start: float
    found: Consulted
    rig_file: Path | None


@dataclass
class RunOptions:
    only: tuple[str, ...] = ()
    start_from: str | None = None
    rig: Path | None = None
    use_cache: bool = True
    pipeline_spec: str = ""  # "module:attr" handed to the children; "" = the default definition
    jobs: int = field(default_factory=default_jobs)  # stages running at once at most
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
        self._running: dict[str, Running] = {}  # stages whose child runs now
        self._starting: list[Stage] = []  # stages the schedule let start, not yet started (an abort skips none)
        self._consulted: dict[str, Consulted] = {}  # the cache's answer for a ready stage, asked before it started
        self._t0 = 0.0
        self._aborting = False

    # -- the run -------------------------------------------------------------------------------------------
    def run(self) -> int:
        schedule = Schedule(select_stages(self.pipeline, self.options.only, self.options.start_from),
                            jobs=self.options.jobs)
        self._check_rig(schedule.stages)
        for name in ("junit", "logs"):
            (self.root / "reports" / name).mkdir(parents=True, exist_ok=True)
        self._t0 = time.perf_counter()
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        aborted: RunAborted | None = None
        try:
            try:
                self._run_graph(schedule)
            except RunAborted as exc:
                aborted = exc
                self._abort(schedule, exc)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            order = {name: i for i, name in enumerate(self.pipeline.names)}
            self.outcomes.sort(key=lambda o: order.get(o.name, len(order)))  # pipeline order, however they ended
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

    def _run_graph(self, schedule: Schedule) -> None:
        """Start every stage whose needs are met (up to --jobs), poll the running ones, until none is left."""
        last_tick = 0.0
        while not schedule.done:
            self._starting = schedule.ready(free=self._restorable)
            if not self._starting and not self._running:  # a validated definition never gets here
                raise RuntimeError(f"no stage can start: {schedule.stuck()}")
            while self._starting:
                stage = self._starting[0]
                outcome = self._begin(stage)
                self._starting.pop(0)
                if outcome is not None:  # restored from the cache: its dependents may start at once
                    self._finish(schedule, stage, outcome)
            if not self._running:
                continue
            ended = [(r, exited) for r in list(self._running.values()) if (exited := r.run.poll()) is not None]
            for r, exited in ended:
                del self._running[r.stage.name]
                self._finish(schedule, r.stage, self._end(r, exited))
            now = time.monotonic()
            if not ended and now - last_tick >= self.progress.tick_s:
                last_tick = now
                for r in self._running.values():
                    self.progress.tick(r.stage, self._elapsed() - r.start, r.run.progress())
            if not ended:
                self._wait_a_little()

    def _wait_a_little(self) -> None:
        """Until a running stage may have ended: on its exit at once when one runs, else a short poll."""
        runs = list(self._running.values())
        if len(runs) == 1:
            try:
                runs[0].run.child.proc.wait(timeout=self.progress.tick_s)
            except subprocess.TimeoutExpired:
                pass
        else:
            time.sleep(POLL_S)

    def _finish(self, schedule: Schedule, stage: Stage, outcome: StageOutcome) -> None:
        self.outcomes.append(outcome)
        for later, why in schedule.finished(stage, outcome):
            self.outcomes.append(self._skipped(later, why))

    def _abort(self, schedule: Schedule, exc: RunAborted) -> None:
        """Every running stage gets the signal at once (each makes its actuators safe and writes its JUnit);
        a stage caught between its start and its child is aborted too; the rest are skipped."""
        runs = list(self._running.values())
        StageProcess.abort_all([r.run for r in runs], exc.signum)
        for r in runs:
            self.outcomes.append(self._aborted(r.stage, exc, r.start))
        for later, why in schedule.abort(str(exc)):
            self.outcomes.append(self._skipped(later, why))
        told = {o.name for o in self.outcomes}
        for stage in schedule.stages:  # caught between the schedule and its child, or while it was being judged
            if stage.name not in told:
                self.outcomes.append(self._aborted(stage, exc, self._elapsed()))
        self._running, self._starting = {}, []

    def exit_code(self, regressions: bool = False) -> int:
        """0 passed; 1 a gate failed (or a regression); 3 nothing failed but a stage whose only failures were the
        rig's (`not_built`, as `hilci stage` exits and the Jenkinsfile's NOT_BUILT stage); 2 any error."""
        bad = [o for o in self.outcomes if o.status in (FAILED, ERROR)]
        if not bad:
            if regressions:
                return EXIT_FAILED
            return EXIT_INFRASTRUCTURE if any(o.status == Status.NOT_BUILT for o in self.outcomes) else EXIT_OK
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
    def _restorable(self, stage: Stage) -> bool:
        """Whether a ready stage that does not fit in --jobs now is a cache hit (restored at once, it takes no job);
        asked once (the loop asks again while it waits), the answer kept for its start."""
        found = self._consulted.get(stage.name)
        if found is None:
            rig = self._rig_for(stage)
            found = self._consulted[stage.name] = self.cache.consult(stage, self.root / rig if rig is not None else None)
        return found.hit is not None

    def _begin(self, stage: Stage) -> StageOutcome | None:
        """A cache hit's outcome (restored), or None once the stage's child has started."""
        start = self._elapsed()
        rig = self._rig_for(stage)
        rig_file = self.root / rig if rig is not None else None
        found = self._consulted.pop(stage.name, None)
        if found is None:
            found = self.cache.consult(stage, rig_file)
        if found.hit is not None:
            return self._cached(stage, found, start, rig_file)
        junit_file = self._junit(stage)
        junit_file.unlink(missing_ok=True)  # a stale file must never pass for this run's result
        self.progress.started(stage)
        run = self.process.start(stage, rig, self._log_path(stage), store_env=self.store.child_env())
        self._running[stage.name] = Running(stage, run, start, time.time(), found, rig_file)
        return None

    def _cached(self, stage: Stage, found: Consulted, start: float, rig_file: Path | None) -> StageOutcome:
        reason = self.cache.restore(stage, found, self._junit(stage), self._log_path(stage))
        outcome = StageOutcome(stage.name, CACHED, start, self._elapsed() - start, reason=reason, exit_code=0,
                               cache_key=found.key, log=self._log_rel(stage))
        self.progress.finished(outcome)
        self.cache.record_cached(stage, outcome, self._junit(stage), rig_file)
        return outcome

    def _end(self, r: Running, exited: Exited) -> StageOutcome:
        stage, junit_file, log_file = r.stage, self._junit(r.stage), self._log_path(r.stage)
        duration = self._elapsed() - r.start
        outcome = outcome_of(self.root, stage, exited, junit_file, r.start, duration, self._log_rel(stage))
        if exited.timed_out or not junit_file.is_file():  # the stage wrote no JUnit to go by
            substitute.error_junit(junit_file, log_file, stage, outcome.reason, duration)
        outcome.cache_key = r.found.key
        self.progress.finished(outcome)
        self.cache.keep(stage, r.found, outcome, r.wall_start, junit_file, log_file, r.rig_file)
        return outcome

    # -- outcomes that never ran a child to its end ------------------------------------------------------
    def _aborted(self, stage: Stage, exc: RunAborted, start: float) -> StageOutcome:
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
