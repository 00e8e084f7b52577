"""`hilci stage NAME`: run one stage's body in this process and write its JUnit file.

Jenkins and the local runner both call this, so a stage behaves the same in a pod and on a laptop.
A stage body is a function `body(ctx: StageContext) -> None` that records testcases on `ctx` (gates with
their measurements) and raises `StageError` for a clean, one-line failure. Exit codes follow pytest's:
0 every testcase passed, 1 a gate failed (Jenkins: UNSTABLE), 2 the stage could not run (an error).
"""

from __future__ import annotations

import importlib
import signal
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from hilci.errors import StageError, UsageError
from hilci.pipeline.config import Config
from hilci.pipeline.model import Pipeline, Stage
from hilci.results import junit
from hilci.stage.context import Aborted, StageContext, log, suite_name
from hilci.util.provenance import commit

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
EXIT_INFRASTRUCTURE = 3  # every failed testcase was the rig's (`hil.failure_class=infrastructure`), none the code's


def load_config(root: Path, pipeline: Pipeline) -> Config:
    """hilci.yaml validated and typed (see `hilci.pipeline.config`); a bad file is a UsageError naming it."""
    from hilci.errors import ConfigError
    from hilci.pipeline.config import load

    try:
        return load(root, pipeline)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def stage_config(root: Path, pipeline: Pipeline, name: str) -> dict[str, Any]:
    return load_config(root, pipeline).section(name)


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


def run_stage(root: Path, pipeline: Pipeline, name: str, rig: Path | None = None, board: str = "local") -> int:
    """Run one stage body, write its JUnit (also on error or abort), return the exit code."""
    stage = pipeline.stage(name)
    try:
        config, config_error = load_config(root, pipeline), ""
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
        if ctx.child is not None and ctx.child.running:
            ctx.child.signal(signum)  # the tool tears down and writes its JUnit; run_child raises
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
    written = junit.write_suite(out.with_name(out.stem + ".gates.xml"), suite_name(stage, board), ctx.cases,
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
