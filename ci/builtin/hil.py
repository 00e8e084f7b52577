"""The pipeline's `hil` stage: `pytest <tests> --rig RIG` in a subprocess, its JUnit merged into the stage's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hilci.builtin.settings import HilSettings
from hilci.errors import StageError
from hilci.stage.context import PYTEST_ABORT_PLUGIN, StageContext, artifacts_dir


def built_engine(ctx: StageContext, cfg: HilSettings) -> Path | None:
    """The engine the stage `engine_from` built for this board (the first of `engine_files` found), if any."""
    if not cfg.engine_from:
        return None
    folder = artifacts_dir(ctx.root, ctx.pipeline.stage(cfg.engine_from), ctx.board)
    for name in cfg.engine_files:
        if (folder / name).is_file():
            return folder / name
    return None


def hil(ctx: StageContext) -> None:
    """Run the HIL suites on the stage's rig (`--rig`, else the pipeline's default rig)."""
    cfg = ctx.settings or HilSettings()
    rig = Path(ctx.rig or ctx.pipeline.default_rig)
    rig_path = rig if rig.is_absolute() else ctx.root / rig
    if not rig_path.is_file():
        raise StageError(f"{rig}: rig file not found")
    timeout = float(cfg.timeout_s or ctx.stage.timeout_s * 0.9)
    junit = ctx.reports / "junit" / f"hil-pytest-{ctx.board}.xml"
    junit.parent.mkdir(parents=True, exist_ok=True)
    junit.unlink(missing_ok=True)  # a stale file must never pass for this run's result
    ctx.junit_files.append(junit)  # merged if pytest writes it, also when the stage is aborted
    log = ctx.artifacts / f"pytest-{ctx.board}.log"
    cmd = [sys.executable, "-m", "pytest", cfg.tests, "--rig", str(rig_path), f"--junitxml={junit}",
           "-o", f"junit_suite_name=hil.{ctx.board}", "-o", "junit_family=xunit2", "-p", "no:cacheprovider",
           *PYTEST_ABORT_PLUGIN, "-q", "-rfE"]
    # failing tests' device traffic goes beside the stage's other artifacts (archived by Jenkins), as a path
    # relative to the project so the report's link works wherever the report is opened
    cmd += ["--hil-logs", str((ctx.artifacts / "hil-logs").relative_to(ctx.root))]
    engine = built_engine(ctx, cfg)
    if engine is not None:
        cmd += ["--engine", str(engine)]
    if ctx.board != "local":  # Jenkins's matrix: the board leads every classname, so boards stay apart
        cmd += ["--board", ctx.board]
    for extra in cfg.pytest_args:
        cmd.append(str(extra))
    ctx.log(f"hil: {' '.join(cmd)}")
    env = dict(os.environ)
    env.pop("HILCI_HIL_STATE", None)
    result = ctx.run_child(cmd, timeout_s=timeout, env=env, log_path=log)
    if result.timed_out:
        raise StageError(f"pytest {cfg.tests} on {rig} did not finish within {timeout:g} s (log: {log})")
    print(result.output[-4000:], end="", flush=True)
    if result.returncode > 1 or not junit.exists():
        last = result.output.strip().splitlines()[-1:] or ["no output"]
        raise StageError(f"pytest {cfg.tests} --rig {rig} could not run (exit {result.returncode}): {last[0]}")
