"""`hilci stage NAME`: run one stage's body in this process and write its JUnit file.

Jenkins and the local runner both call this, so a stage behaves the same in a pod and on a laptop.
A stage body is a function `body(ctx: StageContext) -> None` that records testcases on `ctx` (gates with
their measurements) and raises `StageError` for a clean, one-line failure. Exit codes follow pytest's:
0 every testcase passed, 1 a gate failed (Jenkins: UNSTABLE), 2 the stage could not run (an error).
"""

from __future__ import annotations

import importlib
import signal
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci import junit
from ci.measurements import Measurement
from ci.model import Pipeline, Stage
from ci.settings import as_dict

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


class StageError(Exception):
    """A stage cannot go on; the message names the file, field or device at fault."""


class UsageError(Exception):
    """Bad input from the user (unknown stage, malformed config): one line, exit 2, no traceback."""


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
        return f"hilci.{self.stage.name}"

    def case(self, name: str, *, time_s: float = 0.0, measurements: Iterable[Measurement] = (), **kw) -> Any:
        """Record one testcase of this stage (see `ci.junit.make_case` for the keywords)."""
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


def artifacts_dir(root: Path, stage: Stage, board: str = "local") -> Path:
    """Where a stage keeps its artifacts: artifacts/<stage>/, plus /<board> for a matrix stage on a board."""
    path = root / "artifacts" / stage.name
    return path / board if stage.matrix and board != "local" else path


def log(message: str) -> None:
    """Stage output goes to stdout; the runner captures it into reports/logs/<stage>.log."""
    print(message, flush=True)


def load_config(root: Path, pipeline: Pipeline) -> dict[str, Any]:
    """Every stage's hilci.yaml section as plain data (see `ci.config`), plus the top-level `store` URL and
    `regressions` settings when the file sets them; a bad file is a UsageError naming it."""
    config = _read_config(root, pipeline)
    data: dict[str, Any] = {name: config.section(name) for name in pipeline.names}
    if config.store:
        data["store"] = config.store
    if config.regressions is not None:
        data["regressions"] = as_dict(config.regressions)
    return data


def _read_config(root: Path, pipeline: Pipeline):
    from ci.config import ConfigError, load

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


class _Aborted(BaseException):
    pass


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
    code = EXIT_OK

    def on_signal(signum, _frame):
        raise _Aborted(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if config_error:
            raise StageError(config_error)
        resolve_entry(stage)(ctx)
    except StageError as exc:
        log(f"ERROR {exc}")
        ctx.case(f"{name}", time_s=time.perf_counter() - start, error=str(exc))
        code = EXIT_ERROR
    except _Aborted as exc:
        log(f"ABORTED by {exc}")
        ctx.case(f"{name}", time_s=time.perf_counter() - start, error=f"aborted by {exc}")
        code = 128 + getattr(signal, str(exc), signal.SIGTERM).value
    except Exception as exc:  # a crash in a stage body still yields a testcase with the traceback
        tb = traceback.format_exc()
        log(tb)
        ctx.case(f"{name}", time_s=time.perf_counter() - start, error=f"{type(exc).__name__}: {exc}", details=tb)
        code = EXIT_ERROR
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not ctx.cases and not ctx.junit_files:
        ctx.case(name, time_s=time.perf_counter() - start)
    if code == EXIT_OK and any(c.is_failure or c.is_error for c in ctx.cases):
        code = EXIT_FAILED
    out = junit_path(root, stage, board)
    suite_props = [("hilci.stage", name), ("hilci.board", board)]
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
    return code


def _suite_name(stage: Stage, board: str) -> str:
    return f"hilci.{stage.name}" + (f".{board}" if stage.matrix and board != "local" else "")
