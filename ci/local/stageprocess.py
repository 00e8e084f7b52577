"""One stage as a supervised `hilci stage NAME` child process, and what its exit code and JUnit file say.

The child runs in its own process group (`hilci.stage.child`), its output in reports/logs/<stage>.log, its
progress shown while it runs; past the stage's timeout it is stopped, and an abort of the run is forwarded
to it with time to stop its own tools and write its JUnit.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hilci.pipeline.model import Stage, StageOutcome, Status
from hilci.results import junit
from hilci.results.measurements import INCONCLUSIVE
from hilci.stage.child import KILL_GRACE_S, Child
from hilci.stage.context import ABORT_GRACE_S
from hilci.stage.progress import PROGRESS_ENV, StageProgress, progress_file, read_progress
from hilci.stage.run import EXIT_FAILED, EXIT_OK

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


class StageProcess:
    """Runs `hilci stage NAME` for one stage of the run in `root`."""

    def __init__(self, root: Path, *, env: dict[str, str], pipeline_spec: str = ""):
        self.root = root
        self.env = env
        self.pipeline_spec = pipeline_spec
        self.child: Child | None = None

    def command(self, stage: Stage, rig: Path | None) -> list[str]:
        cmd = [sys.executable, "-m", "hilci", "stage", stage.name]
        return cmd + ["--rig", str(rig)] if rig is not None else cmd

    def environment(self, inside: Path) -> dict[str, str]:
        env = {**os.environ, **self.env, "HILCI_ROOT": str(self.root), "PYTHONUNBUFFERED": "1",
               "HILCI_STAGE_CACHE": "0",  # the runner keeps the cache and the history itself
               PROGRESS_ENV: str(inside)}
        if self.pipeline_spec:
            env["HILCI_PIPELINE"] = self.pipeline_spec
        return env

    def run(self, stage: Stage, rig: Path | None, log_file: Path, tick_s: float,
            on_tick: Callable[[StageProgress | None], None]) -> Exited:
        """Run the stage to its end, its timeout or an abort (`RunAborted` from the signal handler: the
        child gets the signal and STAGE_ABORT_GRACE_S, then the abort goes on up)."""
        inside = progress_file(self.root, stage.name)
        inside.unlink(missing_ok=True)
        with open(log_file, "wb") as log:
            try:
                self.child = Child.start(self.command(stage, rig), cwd=self.root, env=self.environment(inside),
                                         stdout=log)
                code, timed_out = self.child.wait(stage.timeout_s, tick_s=tick_s,
                                                  on_tick=lambda _s: on_tick(read_progress(inside)))
            except RunAborted as exc:  # forwarded: the stage stops its tool (actuators safe), writes its JUnit
                self.stop(exc.signum, grace_s=STAGE_ABORT_GRACE_S)
                raise
            finally:
                self.child = None
        return Exited(code, timed_out)

    def stop(self, first: int = signal.SIGTERM, grace_s: float = KILL_GRACE_S) -> None:
        """Stop the stage's process group if one is running (an abort that came between two steps)."""
        if self.child is not None:
            self.child.stop(first, grace_s)


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
    status = {EXIT_OK: Status.PASSED, EXIT_FAILED: Status.FAILED}.get(code, Status.ERROR)
    outcome = StageOutcome(stage.name, status, start, duration, first_problem(junit_file), code, log=log_rel)
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
