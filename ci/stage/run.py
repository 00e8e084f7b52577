"""`hilci stage NAME`: run one stage's body in this process and write its JUnit file.

Jenkins and the local runner both call this, so a stage behaves the same in a pod and on a laptop.
A stage body is a function `body(ctx: StageContext) -> None` that records testcases on `ctx` (gates with
their measurements) and raises `StageError` for a clean, one-line failure. Exit codes follow pytest's:
0 every testcase passed, 1 a gate failed (Jenkins: UNSTABLE), 2 the stage could not run (an error).
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hilci.errors import StageError, UsageError
from hilci.pipeline.model import Pipeline, Stage
from hilci.results import junit
from hilci.results.measurements import Measurement
from hilci.util.provenance import commit
from hilci.util.settings import as_dict

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
EXIT_INFRASTRUCTURE = 3  # every failed testcase was the rig's (`hil.failure_class=infrastructure`), none the code's
ABORT_GRACE_S = 20.0  # after an abort is forwarded, how long a child gets to tear down and write its JUnit
KILL_GRACE_S = 5.0  # after a timeout's SIGTERM, how long before SIGKILL
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
    child: subprocess.Popen | None = None  # the tool running now: an abort is forwarded to its process group
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
        return _suite_name(self.stage, self.board)

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
                proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            except FileNotFoundError as exc:
                raise StageError(f"{cmd[0]}: {exc.filename or cmd[0]} not found") from None
            self.child = proc
            try:
                code, timed_out = self._wait_child(proc, timeout_s)
            except Aborted as exc:  # the signal came before the child was known: forward it now
                self.aborted = self.aborted or exc.signum
                _signal_group(proc, exc.signum)
                code, timed_out = self._wait_child(proc, timeout_s)
            finally:
                self.child = None
            out.seek(0)
            text = out.read().decode(errors="replace")
        if log_path is not None:
            log_path.write_text(text)
        if self.aborted:
            raise Aborted(self.aborted)
        return ChildResult(code, text, timed_out)

    def _wait_child(self, proc: subprocess.Popen, timeout_s: float) -> tuple[int, bool]:
        deadline = time.monotonic() + timeout_s
        abort_deadline = None
        while True:
            try:
                return proc.wait(timeout=0.1), False
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if self.aborted and abort_deadline is None:
                abort_deadline = now + ABORT_GRACE_S
            if abort_deadline is not None and now > abort_deadline:
                return stop_group(proc, signal.SIGKILL), False
            if abort_deadline is None and now > deadline:
                return stop_group(proc, signal.SIGTERM), True


def artifacts_dir(root: Path, stage: Stage, board: str = "local") -> Path:
    """Where a stage keeps its artifacts: artifacts/<stage>/, plus /<board> for a matrix stage on a board."""
    path = root / "artifacts" / stage.name
    return path / board if stage.matrix and board != "local" else path


def log(message: str) -> None:
    """Stage output goes to stdout; the runner captures it into reports/logs/<stage>.log."""
    print(message, flush=True)


def load_config(root: Path, pipeline: Pipeline) -> dict[str, Any]:
    """Every stage's hilci.yaml section as plain data (see `hilci.pipeline.config`), plus the top-level `store` URL and
    `regressions` settings when the file sets them; a bad file is a UsageError naming it."""
    config = _read_config(root, pipeline)
    data: dict[str, Any] = {name: config.section(name) for name in pipeline.names}
    if config.store:
        data["store"] = config.store
    if config.regressions is not None:
        data["regressions"] = as_dict(config.regressions)
    return data


def _read_config(root: Path, pipeline: Pipeline):
    from hilci.errors import ConfigError
    from hilci.pipeline.config import load

    try:
        return load(root, pipeline)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def stage_config(root: Path, pipeline: Pipeline, name: str) -> dict[str, Any]:
    return _read_config(root, pipeline).section(name)


def junit_path(root: Path, stage: Stage, board: str = "local") -> Path:
    suffix = f"-{board}" if stage.matrix and board != "local" else ""
    return root / "reports" / "junit" / f"{stage.name}{suffix}.xml"


def resolve_entry(stage: Stage):
    module_name, _, func_name = stage.entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StageError(f"stage {stage.name!r}: cannot import {module_name} ({exc})") from exc
    try:
        return getattr(module, func_name)
    except AttributeError:
        raise StageError(f"stage {stage.name!r}: {module_name} has no {func_name}") from None


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(proc: subprocess.Popen, first: int = signal.SIGTERM) -> int:
    """Stop a child's whole process group: `first`, then SIGKILL after KILL_GRACE_S; its exit code."""
    for sig in (first, signal.SIGKILL):
        _signal_group(proc, sig)
        try:
            return proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            continue
    return -9


def run_stage(root: Path, pipeline: Pipeline, name: str, rig: Path | None = None, board: str = "local") -> int:
    """Run one stage body, write its JUnit (also on error or abort), return the exit code."""
    stage = pipeline.stage(name)
    try:
        config, config_error = _read_config(root, pipeline), ""
    except UsageError as exc:  # still a testcase in the stage's JUnit, so Jenkins shows why
        config, config_error = None, str(exc)
    if rig is None and stage.matrix:
        rig = Path(pipeline.default_rig)
    ctx = StageContext(root=root, stage=stage, config=config.section(name) if config else {}, rig=rig,
                       board=board, pipeline=pipeline, settings=config.settings(name) if config else None)
    start = time.perf_counter()
    in_body = True

    def on_signal(signum, _frame):
        if ctx.aborted:  # a second signal must not cut the clean-up of the first short
            return
        ctx.aborted = signum
        if ctx.child is not None and ctx.child.poll() is None:
            _signal_group(ctx.child, signum)  # the tool tears down and writes its JUnit; run_child raises
            return
        if in_body:
            raise Aborted(signum)

    # the handler stays until the JUnit is written: a signal after the body only marks the stage aborted
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = _body(ctx, start, config_error)
        in_body = False
        return _write_junit(ctx, code, start)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _body(ctx: StageContext, start: float, config_error: str = "") -> int:
    """Run the stage body; its exit code so far (the JUnit may still turn a 0 into a 1)."""
    name = ctx.stage.name
    code = EXIT_OK
    try:
        if config_error:
            raise StageError(config_error)
        resolve_entry(ctx.stage)(ctx)
    except StageError as exc:
        log(f"ERROR {exc}")
        ctx.case(f"{name}", time_s=time.perf_counter() - start, error=str(exc))
        code = EXIT_ERROR
    except Aborted as exc:
        log(f"ABORTED by {exc.signame}")
        code = 128 + exc.signum
        if not any(_says_aborted(c.message) for p in ctx.junit_files if p.exists() for c in junit.read_cases(p)):
            ctx.case(f"{name}", time_s=time.perf_counter() - start, error=f"aborted by {exc.signame}")
    except Exception as exc:  # a crash in a stage body still yields a testcase with the traceback
        tb = traceback.format_exc()
        log(tb)
        ctx.case(f"{name}", time_s=time.perf_counter() - start, error=f"{type(exc).__name__}: {exc}", details=tb)
        code = EXIT_ERROR
    return code


def _write_junit(ctx: StageContext, code: int, start: float) -> int:
    """The stage's JUnit: its own testcases and those of the tools it ran, merged; the final exit code."""
    root, stage, board, name = ctx.root, ctx.stage, ctx.board, ctx.stage.name
    if not ctx.cases and not ctx.junit_files:
        ctx.case(name, time_s=time.perf_counter() - start)
    if code == EXIT_OK and any(c.is_failure or c.is_error for c in ctx.cases):
        code = EXIT_FAILED
    out = junit_path(root, stage, board)
    suite_props = [("hilci.stage", name), ("hilci.board", board), ("hilci.commit", commit(root)),
                   ("hilci.host", socket.gethostname())]
    if stage.matrix and ctx.rig is not None:
        suite_props.append(("hilci.rig", str(ctx.rig)))
    written = junit.write_suite(out.with_name(out.stem + ".gates.xml"), _suite_name(stage, board), ctx.cases,
                                suite_props) if ctx.cases else None
    parts = ([written] if written else []) + [p for p in ctx.junit_files if p.exists()]
    junit.merge(parts, out)
    if written:
        written.unlink()
    for part in ctx.junit_files:  # now inside the stage's file: judge, then drop, so nothing is counted twice
        if part.exists() and part != out:
            if code == EXIT_OK and any(r.status in (junit.FAILED, junit.ERROR) for r in junit.read_cases(part)):
                code = EXIT_FAILED
            part.unlink()
    if ctx.aborted and code in (EXIT_OK, EXIT_FAILED):  # aborted after the body had finished
        code = 128 + ctx.aborted
    if code == EXIT_FAILED:
        bad = [c for c in junit.read_cases(out) if c.status in (junit.FAILED, junit.ERROR)]
        if bad and all(c.failure_class == junit.INFRASTRUCTURE for c in bad):
            code = EXIT_INFRASTRUCTURE
    return code


def _says_aborted(message: str) -> bool:
    return message.startswith("aborted by")


def _suite_name(stage: Stage, board: str) -> str:
    return f"hilci.{stage.name}" + (f".{board}" if stage.matrix and board != "local" else "")
