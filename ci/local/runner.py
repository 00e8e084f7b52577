"""The local runner (`hilci run`): each stage as a `hilci stage NAME` subprocess, in order, with the stage cache.

It stops at the first stage that does not pass and reports the rest as skipped with the reason; a stage that
crashes, times out or is aborted still gets a testcase carrying the error and its log tail. Whatever happens,
the JUnit gathered so far, the merged reports/junit.xml and reports/index.html are written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hilci.errors import UsageError
from hilci.local.progress import Progress
from hilci.pipeline.model import Pipeline, Stage, StageOutcome, Status
from hilci.results import junit
from hilci.results.measurements import INCONCLUSIVE
from hilci.stage.progress import PROGRESS_ENV, progress_file, read_progress
from hilci.stage.run import ABORT_GRACE_S, EXIT_ERROR, EXIT_FAILED, EXIT_OK, junit_path, load_config
from hilci.store.backend import without_store_credentials
from hilci.store.keys import cacheable_on, rig_is_emulated  # noqa: F401 - rig_is_emulated: moved there
from hilci.store.session import StoreSession

PASSED, FAILED, ERROR, CACHED, SKIPPED = Status.PASSED, Status.FAILED, Status.ERROR, Status.CACHED, Status.SKIPPED
KILL_GRACE_S = 5.0
STAGE_ABORT_GRACE_S = ABORT_GRACE_S + 10.0  # the stage forwards an abort to its tool and writes its JUnit
LOG_TAIL_LINES = 40


@dataclass
class RunOptions:
    only: tuple[str, ...] = ()
    start_from: str | None = None
    rig: Path | None = None
    use_cache: bool = True
    pipeline_spec: str = ""  # "module:attr" handed to the children; "" = the default definition
    env: dict[str, str] = field(default_factory=dict)


class _Abort(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def select_stages(pipeline: Pipeline, only: tuple[str, ...], start_from: str | None) -> list[Stage]:
    return pipeline.select(only, start_from)


class LocalRunner:
    """Runs the selected stages of one pipeline in `root` and writes the reports."""

    def __init__(self, root: Path, pipeline: Pipeline, options: RunOptions, progress: Progress | None = None):
        self.root = root
        self.pipeline = pipeline.validate(root)
        self.options = options
        self.progress = progress or Progress.for_stream(sys.stdout)
        self.config = load_config(root, pipeline)
        self.store = StoreSession.open(root, self.pipeline, self.config, use_cache=options.use_cache)
        self.outcomes: list[StageOutcome] = []
        self._child: subprocess.Popen | None = None
        self._t0 = 0.0
        self._aborting = False

    # -- the run -------------------------------------------------------------------------------------------
    def run(self) -> int:
        stages = select_stages(self.pipeline, self.options.only, self.options.start_from)
        rig = self.options.rig
        if rig is not None and any(s.matrix for s in stages) and not (self.root / rig).is_file():
            raise UsageError(f"rig file {rig} does not exist")
        for name in ("junit", "logs"):
            (self.root / "reports" / name).mkdir(parents=True, exist_ok=True)
        self._t0 = time.perf_counter()
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        aborted: _Abort | None = None
        try:
            for index, stage in enumerate(stages):
                try:
                    outcome = self._run_one(stage)
                except _Abort as exc:
                    aborted = exc
                    outcome = self._aborted(stage, exc)
                self.outcomes.append(outcome)
                if not outcome.ok:
                    why = (f"pipeline aborted by {aborted}" if aborted else
                           f"stage '{stage.name}' {outcome.status}")
                    for later in stages[index + 1:]:
                        self.outcomes.append(self._skipped(later, why))
                    break
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

    def _run_one(self, stage: Stage) -> StageOutcome:
        start = time.perf_counter() - self._t0
        rig = self._rig_for(stage)
        key, parts = ("", {})
        rig_file = self.root / rig if rig is not None else None
        if self._cacheable(stage, rig):
            key, parts = self.store.key(stage, rig_file)
            hit = self.store.lookup(stage, key)
            if hit is not None:
                self.store.cache.restore(hit, stage)
                self._restore_reports(stage, hit)
                outcome = StageOutcome(stage.name, CACHED, start, time.perf_counter() - self._t0 - start,
                                       reason=f"{hit.origin}; inputs unchanged (key {key[:12]})", exit_code=0,
                                       cache_key=key, log=str(self._log_path(stage).relative_to(self.root)))
                self.progress.finished(outcome)
                self.store.record(stage, status=CACHED, start=time.time(), duration_s=outcome.duration_s, key=key,
                                  junit_file=self._junit(stage), rig=rig_file, cached=True)
                return outcome
        wall_start = time.time()
        outcome = self._execute(stage, rig, start)
        outcome.cache_key = key
        if self._cacheable(stage, rig) and outcome.status == PASSED:
            self.store.save(stage, key, parts, self._junit(stage), self._log_path(stage))
        if outcome.status in (PASSED, FAILED):
            self.store.record(stage, status=outcome.status, start=wall_start, duration_s=outcome.duration_s,
                              key=key, junit_file=self._junit(stage), rig=rig_file)
        return outcome

    def _execute(self, stage: Stage, rig: Path | None, start: float) -> StageOutcome:
        junit_file, log_file = self._junit(stage), self._log_path(stage)
        junit_file.unlink(missing_ok=True)  # a stale file must never pass for this run's result
        cmd = [sys.executable, "-m", "hilci", "stage", stage.name]
        if rig is not None:
            cmd += ["--rig", str(rig)]
        inside = progress_file(self.root, stage.name)
        inside.unlink(missing_ok=True)
        env = {**os.environ, **self.options.env, "HILCI_ROOT": str(self.root), "PYTHONUNBUFFERED": "1",
               "HILCI_STAGE_CACHE": "0",  # the runner keeps the cache and the history itself
               PROGRESS_ENV: str(inside)}
        if self.options.pipeline_spec:
            env["HILCI_PIPELINE"] = self.options.pipeline_spec
        if not stage.uses_store:  # the runner keeps the cache: a stage that does not use the store gets no keys
            env = without_store_credentials(env)
        env.update(self.store.child_env())  # a store found down stays down for the stage (one deadline a run)
        self.progress.started(stage)
        with open(log_file, "wb") as log:
            self._child = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
            timed_out = False
            try:
                while True:
                    try:
                        code = self._child.wait(timeout=self.progress.tick_s)
                        break
                    except subprocess.TimeoutExpired:
                        elapsed = time.perf_counter() - self._t0 - start
                        self.progress.tick(stage, elapsed, read_progress(inside))
                        if elapsed > stage.timeout_s:
                            timed_out = True
                            code = self._stop_child()
                            break
            except _Abort as exc:  # forwarded: the stage stops its tool (actuators safe) and writes its JUnit
                self._stop_child(exc.signum, grace_s=STAGE_ABORT_GRACE_S)
                raise
            finally:
                self._child = None
        duration = time.perf_counter() - self._t0 - start
        log_rel = str(log_file.relative_to(self.root))
        if timed_out:
            reason = f"timed out after {stage.timeout_s:g} s"
            self._error_junit(stage, reason, duration)
            outcome = StageOutcome(stage.name, ERROR, start, duration, reason, code, log=log_rel)
        elif not junit_file.is_file():
            reason = f"exited with code {code} without writing {junit_file.relative_to(self.root)}"
            self._error_junit(stage, reason, duration)
            outcome = StageOutcome(stage.name, ERROR, start, duration, reason, code, log=log_rel)
        else:
            status = {EXIT_OK: PASSED, EXIT_FAILED: FAILED}.get(code, ERROR)
            outcome = StageOutcome(stage.name, status, start, duration, self._first_problem(junit_file),
                                   code, log=log_rel)
            if status == PASSED and code == EXIT_OK and outcome.reason:
                outcome.status = FAILED  # a stage that exits 0 with failing testcases does not pass
            inconclusive = count_inconclusive(junit_file)
            if inconclusive:  # neither passed nor failed: the summary says so, beside whatever else it says
                note = f"{inconclusive} inconclusive timing verdict(s): the host was too busy to judge the device"
                outcome.reason = f"{outcome.reason}; {note}" if outcome.reason else note
        self.progress.finished(outcome)
        return outcome

    def _stop_child(self, first: int = signal.SIGTERM, grace_s: float = KILL_GRACE_S) -> int:
        """Stop the child's whole process group: the signal we got (SIGTERM by default), then SIGKILL."""
        child = self._child
        if child is None:
            return -1
        for sig, wait_s in ((first, grace_s), (signal.SIGKILL, KILL_GRACE_S)):
            try:
                os.killpg(child.pid, sig)
            except ProcessLookupError:
                pass
            try:
                return child.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        return -9

    def _on_signal(self, signum: int, _frame) -> None:
        if self._aborting:  # a second Ctrl-C must not interrupt the clean-up of the first
            return
        self._aborting = True
        raise _Abort(signum)

    # -- outcomes that never ran a child -------------------------------------------------------------------
    def _aborted(self, stage: Stage, exc: _Abort) -> StageOutcome:
        self._stop_child()
        start = self.outcomes[-1].start_s + self.outcomes[-1].duration_s if self.outcomes else 0.0
        duration = time.perf_counter() - self._t0 - start
        reason = f"aborted by {exc}"
        junit_file = self._junit(stage)
        if junit_file.is_file():
            existing = junit.read_cases(junit_file)
            if any("aborted" in c.message for c in existing):
                reason = next(c.message for c in existing if "aborted" in c.message)
            else:
                self._error_junit(stage, reason, duration)
        else:
            self._error_junit(stage, reason, duration)
        outcome = StageOutcome(stage.name, ERROR, start, duration, reason, 128 + exc.signum,
                               log=str(self._log_path(stage).relative_to(self.root)))
        self.progress.finished(outcome)
        return outcome

    def _skipped(self, stage: Stage, why: str) -> StageOutcome:
        junit_file = self._junit(stage)
        case = junit.make_case(stage.name, f"hilci.{stage.name}", skipped=f"skipped: {why}")
        junit.write_suite(junit_file, self._suite_name(stage), [case], [("hilci.stage", stage.name)])
        outcome = StageOutcome(stage.name, SKIPPED, reason=why)
        self.progress.finished(outcome)
        return outcome

    def _error_junit(self, stage: Stage, reason: str, duration: float) -> None:
        tail = log_tail(self._log_path(stage))
        case = junit.make_case(stage.name, f"hilci.{stage.name}", time=duration, error=reason,
                               details=f"last lines of {self._log_path(stage).name}:\n{tail}")
        junit.write_suite(self._junit(stage), self._suite_name(stage), [case], [("hilci.stage", stage.name)])

    def _restore_reports(self, stage: Stage, hit) -> None:
        """A cached stage's JUnit is the one it passed with, marked as cached from its commit and build."""
        self.store.write_cached_junit(hit, self._junit(stage))
        log = self._log_path(stage)
        log.write_bytes(f"{hit.origin}: restored from {self.store.display} (entry {hit.key[:12]})\n"
                        "--- log of the run that produced it ---\n".encode() + hit.log)

    def _cacheable(self, stage: Stage, rig: Path | None) -> bool:
        return self.store.cache is not None and cacheable_on(stage, self.root / rig if rig else None)

    # -- paths and reports --------------------------------------------------------------------------------
    def _rig_for(self, stage: Stage) -> Path | None:
        if not stage.matrix:
            return None
        return self.options.rig

    def _junit(self, stage: Stage) -> Path:
        return junit_path(self.root, stage)

    def _log_path(self, stage: Stage) -> Path:
        return self.root / "reports" / "logs" / f"{stage.name}.log"

    @staticmethod
    def _suite_name(stage: Stage) -> str:
        return f"hilci.{stage.name}"

    @staticmethod
    def _first_problem(junit_file: Path) -> str:
        for case in junit.read_cases(junit_file):
            if case.status in (junit.FAILED, junit.ERROR):
                return f"{case.name}: {case.message}".strip()
        return ""

    def write_reports(self) -> None:
        from hilci.report.html import write_reports

        run_file = self.root / "reports" / "run.json"
        run_file.write_text(json.dumps({"stages": [asdict(o) for o in self.outcomes], "store": self.store.stats()},
                                       indent=1))
        files = [self._junit(self.pipeline.stage(o.name)) for o in self.outcomes]
        gated = self.store.gates_junit(self.root / "reports" / "junit" / "regressions.xml")
        write_reports(self.root, [f for f in files if f.is_file()] + ([gated] if gated else []), self.outcomes,
                      trends=self.store.trends())


def count_inconclusive(junit_file: Path) -> int:
    """Measurements judged inconclusive (an emulated rig on a busy host) in a stage's JUnit."""
    return sum(1 for case in junit.read_cases(junit_file) for m in case.measurements.values()
               if m.get("verdict") == INCONCLUSIVE)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
