"""The bodies of the pipeline's own stages: `build` (wheel, lint, unit tests) and `report`."""

from __future__ import annotations

import sys
import time

from hilci.builtin.settings import BuildSettings, ReportSettings
from hilci.errors import StageError
from hilci.stage.context import PYTEST_ABORT_PLUGIN, ChildResult, StageContext


def _run(ctx: StageContext, name: str, cmd: list[str], timeout_s: float) -> ChildResult | None:
    """Run one tool as a testcase of the stage: its output is the testcase's system-out, a timeout an error."""
    start = time.perf_counter()
    ctx.log(f"$ {' '.join(cmd)}")
    proc = ctx.run_child(cmd, timeout_s=timeout_s)
    if proc.timed_out:
        ctx.case(name, time_s=time.perf_counter() - start, error=f"{name} timed out after {timeout_s:g} s")
        return None
    ctx.log(proc.output[-3000:])
    return proc


def build(ctx: StageContext) -> None:
    """Wheel, ruff, unit tests: each a testcase; the unit tests' own JUnit is merged into the stage's."""
    cfg = ctx.settings or BuildSettings()
    start = time.perf_counter()
    dist = ctx.root / "dist"
    proc = _run(ctx, "wheel", [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)],
                cfg.wheel_timeout_s)
    if proc is not None:
        name = cfg.wheel.replace("-", "_")  # a wheel's file name spells the distribution with underscores
        wheels = sorted(dist.glob(f"{name}-*.whl" if name else "*.whl"))
        failure = None if proc.returncode == 0 and wheels else \
            f"python -m build exited {proc.returncode}: {proc.output.strip()[-500:]}"
        ctx.case("wheel", time_s=time.perf_counter() - start, failure=failure,
                 properties=[("wheel", wheels[-1].name)] if wheels else [])

    start = time.perf_counter()
    proc = _run(ctx, "ruff", [sys.executable, "-m", "ruff", "check", *cfg.lint],
                cfg.lint_timeout_s) if cfg.lint else None
    if proc is not None:
        ctx.case("ruff", time_s=time.perf_counter() - start,
                 failure=None if proc.returncode == 0 else f"ruff found problems:\n{proc.output[-2000:]}",
                 stdout=proc.output[-5000:])

    junit_file = ctx.reports / "junit" / "build-unit-tests.xml"
    junit_file.unlink(missing_ok=True)
    ctx.junit_files.append(junit_file)  # merged if pytest writes it, also when the stage is aborted
    marker = cfg.unit_test_marker
    cmd = [sys.executable, "-m", "pytest", cfg.tests, "-q", "-m", marker, "-p", "no:cacheprovider",
           *PYTEST_ABORT_PLUGIN, f"--junitxml={junit_file}", "-o", "junit_suite_name=hilci.build.unit-tests",
           "-o", "junit_family=xunit2"]
    proc = _run(ctx, "unit tests", cmd, cfg.test_timeout_s)
    if proc is not None and not junit_file.exists():
        ctx.case("unit tests", error=f"pytest exited {proc.returncode} without writing {junit_file.name}",
                 details=proc.output[-4000:])
    if proc is not None and proc.returncode > 1 and junit_file.exists():
        ctx.case("unit tests", error=f"pytest exited {proc.returncode} (usage or internal error)",
                 details=proc.output[-4000:])


def _regression_gates(ctx: StageContext) -> list[dict]:
    """With a store configured: this build's records against the baseline (a testcase each), and the trends."""
    from hilci.stage.run import load_config
    from hilci.store.session import StoreSession
    from hilci.store.stagerun import wanted

    config = load_config(ctx.root, ctx.pipeline)
    if not wanted(ctx.root, config):  # no shared store, or `hilci run`, which gates the run itself
        return []
    session = StoreSession.open(ctx.root, ctx.pipeline, config, use_cache=False)
    try:
        session.adopt_build()
        session.judge()
        ctx.cases.extend(session.gate_cases())
        return session.trends()
    finally:
        for note in session.close():
            ctx.log(f"note: {note}")


def report(ctx: StageContext) -> None:
    """Merge every stage's JUnit into reports/junit.xml and render reports/index.html."""
    from hilci.report.html import write_reports

    junit_dir = ctx.reports / "junit"
    files = [p for stage in ctx.pipeline.stages if stage.name != ctx.stage.name
             for p in sorted({*junit_dir.glob(f"{stage.name}.xml"), *junit_dir.glob(f"{stage.name}-*.xml")})]
    if not files:
        raise StageError(f"no JUnit files in {junit_dir} to report on")
    trends = _regression_gates(ctx)
    html = write_reports(ctx.root, files, title=(ctx.settings or ReportSettings()).title, trends=trends)
    ctx.case("report", properties=[("report.html", str(html.relative_to(ctx.root))),
                                   ("report.junit_files", str(len(files)))])
