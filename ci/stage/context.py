"""What a stage body gets (`StageContext`): where to read and write, its pipeline, rig and settings, where to
record its testcases, and how to run a tool as a supervised child process that an abort reaches."""

from __future__ import annotations

import signal
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hilci.errors import StageError
from hilci.pipeline.model import Pipeline, Stage
from hilci.results import junit
from hilci.results.measurements import Measurement
from hilci.stage.child import Child

ABORT_GRACE_S = 20.0  # after an abort is forwarded, how long a child gets to tear down and write its JUnit
PYTEST_ABORT_PLUGIN = ("-p", "hilci.stage.interrupt")  # every pytest a stage starts: clean abort, JUnit kept


class Aborted(BaseException):
    """The stage was told to stop (SIGTERM from Jenkins, SIGINT from a terminal)."""

    def __init__(self, signum: int):
        self.signum = signum
        self.signame = signal.Signals(signum).name
        super().__init__(self.signame)


@dataclass
class ChildResult:
    """What a tool run by a stage left: its exit code, its output (stdout and stderr), whether it timed out."""

    returncode: int
    output: str
    timed_out: bool = False


@dataclass
class StageContext:
    """What a stage body gets: where to read and write, its pipeline, rig and settings, and where to record results.

    A body reads what it needs from here and never imports the definition or the CLI: the same body then runs
    any pipeline it is part of (`--pipeline`), in Jenkins and locally."""

    root: Path
    stage: Stage
    config: dict[str, Any]  # the stage's hilci.yaml section as plain data, defaults filled in
    rig: Path | None = None
    board: str = "local"
    pipeline: Pipeline | None = None
    settings: Any = None  # the same section as its typed settings object (None for a free-form section)
    cases: list = field(default_factory=list)
    junit_files: list[Path] = field(default_factory=list)  # JUnit written by tools the stage ran (pytest)
    child: Child | None = None  # the tool running now: an abort is forwarded to its process group
    aborted: int = 0  # the signal that aborted the stage, once one has

    @property
    def artifacts(self) -> Path:
        """The stage's own artifact folder (created on first use): artifacts/<stage>/, and for a matrix
        stage on a Jenkins board artifacts/<stage>/<board>/, so boards' archives never overwrite each other."""
        path = artifacts_dir(self.root, self.stage, self.board)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def reports(self) -> Path:
        path = self.root / "reports"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def classname(self) -> str:
        """hilci.<stage>, and .<board> for a matrix stage on a Jenkins board: Jenkins groups testcases by
        classname, so two boards' `convert` results stay two testcases instead of merging into one."""
        return suite_name(self.stage, self.board)

    def case(self, name: str, *, time_s: float = 0.0, measurements: Iterable[Measurement] = (), **kw) -> Any:
        """Record one testcase of this stage (see `hilci.results.junit.make_case` for the keywords)."""
        tc = junit.make_case(name, self.classname, time=time_s, measurements=measurements, **kw)
        self.cases.append(tc)
        return tc

    def gate(self, name: str, *measurements: Measurement, time_s: float = 0.0) -> bool:
        """A testcase judged by its measurements; returns whether every one passed."""
        self.case(name, time_s=time_s, measurements=measurements)
        ok = all(m.passed for m in measurements)
        for m in measurements:
            log(f"{'PASS' if m.passed else 'FAIL'} {m.message()}")
        return ok

    def log(self, message: str) -> None:
        log(message)

    def run_child(self, cmd: list[str], *, timeout_s: float, env: dict[str, str] | None = None,
                  log_path: Path | None = None) -> ChildResult:
        """Run a tool in its own process group and wait for it, within `timeout_s` (then SIGTERM, SIGKILL).

        An abort of the stage is forwarded to the tool, which gets ABORT_GRACE_S to tear down (actuators
        safe, JUnit written, temporary folders removed); then `Aborted` is raised, so the stage keeps what the
        tool wrote. Output goes to an unlinked temporary file (never a pipe a chatty tool could fill).
        """
        with tempfile.TemporaryFile() as out:
            try:
                child = Child.start(cmd, cwd=self.root, env=env, stdout=out)
            except FileNotFoundError as exc:
                raise StageError(f"{cmd[0]}: {exc.filename or cmd[0]} not found") from None
            self.child = child
            try:
                code, timed_out = self._wait(child, timeout_s)
            except Aborted as exc:  # the signal came before the child was known: forward it now
                self.aborted = self.aborted or exc.signum
                child.signal(exc.signum)
                code, timed_out = self._wait(child, timeout_s)
            finally:
                self.child = None
            out.seek(0)
            text = out.read().decode(errors="replace")
        if log_path is not None:
            log_path.write_text(text)
        if self.aborted:
            raise Aborted(self.aborted)
        return ChildResult(code, text, timed_out)

    def _wait(self, child: Child, timeout_s: float) -> tuple[int, bool]:
        return child.wait(timeout_s, aborted=lambda: self.aborted, abort_grace_s=ABORT_GRACE_S)


def artifacts_dir(root: Path, stage: Stage, board: str = "local") -> Path:
    """Where a stage keeps its artifacts: artifacts/<stage>/, plus /<board> for a matrix stage on a board."""
    path = root / "artifacts" / stage.name
    return path / board if stage.matrix and board != "local" else path


def suite_name(stage: Stage, board: str) -> str:
    return f"hilci.{stage.name}" + (f".{board}" if stage.matrix and board != "local" else "")


def log(message: str) -> None:
    """Stage output goes to stdout; the runner captures it into reports/logs/<stage>.log."""
    print(message, flush=True)
