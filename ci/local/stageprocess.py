"""One stage as a supervised `hilci stage NAME` child process, and what its exit code and JUnit file say.

The child runs in its own process group (`hilci.stage.child`), its output in reports/logs/<stage>.log, its
progress shown while it runs; past the stage's timeout it is stopped, and an abort of the run is forwarded
to every running stage at once, with time to stop its own tools and write its JUnit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from hilci.pipeline.model import Stage, StageOutcome, Status
from hilci.results import junit
from hilci.results.measurements import INCONCLUSIVE
from hilci.stage.child import Child
from hilci.stage.context import ABORT_GRACE_S
from hilci.stage.progress import PROGRESS_ENV, StageProgress, progress_file, read_progress
from hilci.stage.run import EXIT_FAILED, EXIT_INFRASTRUCTURE, EXIT_OK
from hilci.store.backend import without_store_credentials

INFRASTRUCTURE_ONLY = "only infrastructure failed (exit 3): the rig, not the code"
STAGE_ABORT_GRACE_S = ABORT_GRACE_S + 10.0  # the stage forwards an abort to its tool and writes its JUnit


class RunAborted(Exception):
    """The run was told to stop (raised from the runner's signal handler)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class Exited:
    """How a stage's process ended: its exit code and whether it was stopped for running past its timeout."""

    code: int
    timed_out: bool


class RunningStage:
    """One stage's `hilci stage NAME` child while it runs: polled by the runner, never waited on, so several run
    at once and the runner's main thread (the only one that gets signals) stays free to forward an abort."""

    def __init__(self, stage: Stage, child: Child, log: IO, inside: Path, started: float):
        self.stage = stage
        self.child = child
        self.log = log
        self.inside = inside
        self.started = started  # time.monotonic() at the start

    def poll(self) -> Exited | None:
        """Its exit once it has ended (stopped here when past the stage's timeout), else None."""
        code = self.child.proc.poll()
        if code is None and time.monotonic() - self.started > self.stage.timeout_s:
            return self._close(self.child.stop(signal.SIGTERM), True)
        return None if code is None else self._close(code, False)

    def progress(self) -> StageProgress | None:
        return read_progress(self.inside)

    def _close(self, code: int, timed_out: bool) -> Exited:
        self.log.close()
        return Exited(code, timed_out)


class StageProcess:
    """Starts `hilci stage NAME` for stages of the run in `root`, and stops them all on an abort."""

    def __init__(self, root: Path, *, env: dict[str, str], pipeline_spec: str = ""):
        self.root = root
        self.env = env
        self.pipeline_spec = pipeline_spec

    def command(self, stage: Stage, rig: Path | None) -> list[str]:
        cmd = [sys.executable, "-m", "hilci", "stage", stage.name]
        return cmd + ["--rig", str(rig)] if rig is not None else cmd

    def environment(self, stage: Stage, inside: Path, store_env: dict[str, str] | None = None) -> dict[str, str]:
        env = {**os.environ, **self.env, "HILCI_ROOT": str(self.root), "PYTHONUNBUFFERED": "1",
               "HILCI_STAGE_CACHE": "0",  # the runner keeps the cache and the history itself
               PROGRESS_ENV: str(inside)}
        if self.pipeline_spec:
            env["HILCI_PIPELINE"] = self.pipeline_spec
        if not stage.uses_store:  # the runner keeps the cache: a stage that does not use the store gets no keys
            env = without_store_credentials(env)
        env.update(store_env or {})  # a store found down stays down for the stage (one deadline a run)
        return env

    def start(self, stage: Stage, rig: Path | None, log_file: Path,
              store_env: dict[str, str] | None = None) -> RunningStage:
        """Start the stage's child in its own process group, its output in `log_file`."""
        inside = progress_file(self.root, stage.name)
        inside.unlink(missing_ok=True)
        log = open(log_file, "wb")
        try:
            child = Child.start(self.command(stage, rig), cwd=self.root,
                                env=self.environment(stage, inside, store_env), stdout=log)
        except BaseException:
            log.close()
            raise
        return RunningStage(stage, child, log, inside, time.monotonic())

    @staticmethod
    def abort_all(running: list[RunningStage], signum: int, grace_s: float = STAGE_ABORT_GRACE_S) -> None:
        """Forward an abort to every running stage's group at once, so each stops its tool (actuators safe
        first) and writes its JUnit; all within one shared `grace_s`, then SIGKILL."""
        for run in running:
            run.child.signal(signum)
        deadline = time.monotonic() + grace_s
        for run in running:
            try:
                run.child.proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                run.child.stop(signal.SIGKILL)
            run.log.close()


def outcome_of(root: Path, stage: Stage, exited: Exited, junit_file: Path, start: float, duration: float,
               log_rel: str) -> StageOutcome:
    """The stage's outcome from its exit and its JUnit; `reason` is set when a substitute JUnit is needed
    (timed out, no file written) and the status is then ERROR."""
    code = exited.code
    if exited.timed_out:
        return StageOutcome(stage.name, Status.ERROR, start, duration, f"timed out after {stage.timeout_s:g} s",
                            code, log=log_rel)
    if not junit_file.is_file():
        return StageOutcome(stage.name, Status.ERROR, start, duration,
                            f"exited with code {code} without writing {junit_file.relative_to(root)}", code, log=log_rel)
    status = {EXIT_OK: Status.PASSED, EXIT_FAILED: Status.FAILED,
              EXIT_INFRASTRUCTURE: Status.NOT_BUILT}.get(code, Status.ERROR)
    reason = first_problem(junit_file)
    if status == Status.NOT_BUILT:  # the Jenkinsfile's words for the same exit (a NOT_BUILT stage)
        reason = f"{INFRASTRUCTURE_ONLY}: {reason}" if reason else INFRASTRUCTURE_ONLY
    outcome = StageOutcome(stage.name, status, start, duration, reason, code, log=log_rel)
    if status == Status.PASSED and code == EXIT_OK and outcome.reason:
        outcome.status = Status.FAILED  # a stage that exits 0 with failing testcases does not pass
    inconclusive = count_inconclusive(junit_file)
    if inconclusive:  # neither passed nor failed: the summary says so, beside whatever else it says
        note = f"{inconclusive} inconclusive timing verdict(s): the host was too busy to judge the device"
        outcome.reason = f"{outcome.reason}; {note}" if outcome.reason else note
    return outcome


def first_problem(junit_file: Path) -> str:
    for case in junit.read_cases(junit_file):
        if case.status in (junit.FAILED, junit.ERROR):
            return f"{case.name}: {case.message}".strip()
    return ""


def count_inconclusive(junit_file: Path) -> int:
    """Measurements judged inconclusive (an emulated rig on a busy host) in a stage's JUnit."""
    return sum(1 for case in junit.read_cases(junit_file) for m in case.measurements.values()
               if m.get("verdict") == INCONCLUSIVE)
