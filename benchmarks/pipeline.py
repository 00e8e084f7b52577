"""Pipeline benchmarks, measured side by side in one run:

1. cold `hilci run` (empty cache) against a warm run with nothing changed (ratio warm/cold; target <= 0.1);
2. the runner's own overhead around 50 no-op stages (target <= 50 ms per stage), next to the bare cost of
   starting 50 Python processes that import what `hilci stage` imports (run with --jobs 1: one at a time);
3. the graph: a full cold run with the graph (default --jobs) against the line (--jobs 1) (ratio), and, after
   it, a change that touches only hil_tests/: the time from `hilci run` to the first HIL verdict (the runner's
   `[hil] ok` line) against the cold run (target <= 0.2): `hil` runs on the cached engine beside `build`.

Every run is in a scratch copy of the repository's tracked files, so the working tree and its cache are left
alone. Usage: python benchmarks/pipeline.py [--only build,train,...] [--skip-cold-warm] [--skip-graph] [--quick]

--quick (what `make test` runs, through tests/test_benchmarks.py) measures the same things on small fixture
pipelines (tests/fixture_pipelines.py: SHAPED is the reference pipeline's graph with sleeps) and 5 no-op
stages: it proves the script runs, in seconds.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hilci.local.schedule import default_jobs  # noqa: E402 - needs the repository on sys.path
from tests.scratch import child_env  # noqa: E402


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 3600) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - start, proc.returncode, proc.stdout + proc.stderr


def statuses(root: Path) -> dict[str, str]:
    data = json.loads((root / "reports" / "run.json").read_text())
    return {s["name"]: s["status"] for s in data["stages"]}


def cold_warm(only: str, quick: bool = False) -> None:
    from tests.fixture_pipelines import make_project
    from tests.scratch import scratch_copy

    env = child_env(CI="true")
    if quick:
        env.update(PYTHONPATH=str(REPO), HILCI_PIPELINE="tests.fixture_pipelines:PIPELINE")
    with tempfile.TemporaryDirectory(prefix="hilci-bench-") as tmp:
        root = make_project(Path(tmp), "") if quick else scratch_copy(Path(tmp))
        cmd = [sys.executable, "-m", "hilci", "run"] + (["--only", only] if only else [])
        cold, code_cold, out = run(cmd, root, env)
        if code_cold != 0:
            print(out[-3000:])
            raise SystemExit(f"bench: cold run failed with exit code {code_cold}")
        cold_status = statuses(root)
        warm, code_warm, out = run(cmd, root, env)
        warm_status = statuses(root)
    print(f"bench: pipeline cold run: {cold:.2f} s ({', '.join(f'{k}={v}' for k, v in cold_status.items())})")
    print(f"bench: pipeline warm run: {warm:.2f} s ({', '.join(f'{k}={v}' for k, v in warm_status.items())})")
    print(f"bench: pipeline warm/cold ratio: {warm / cold:.3f} (target <= 0.1; exit codes {code_cold}/{code_warm})")


def overhead(n: int = 50) -> None:
    from tests.fixture_pipelines import NOOP, make_project

    env = child_env(CI="true", PYTHONPATH=str(REPO), HILCI_PIPELINE="tests.fixture_pipelines:NOOP")
    only = ",".join(NOOP.names[:n])
    with tempfile.TemporaryDirectory(prefix="hilci-noop-") as tmp:
        root = make_project(Path(tmp), "")
        total, code, out = run([sys.executable, "-m", "hilci", "run", "--no-cache", "--jobs", "1", "--only", only],
                               root, env)
        if code != 0:
            print(out[-3000:])
            raise SystemExit("bench: no-op pipeline failed")
        stages = json.loads((root / "reports" / "run.json").read_text())["stages"]
        child = sum(s["duration_s"] for s in stages)
        # the floor any process-per-stage design pays: start Python and import what `hilci stage` imports
        probe = "import hilci.stage.run, hilci.example, tests.fixture_pipelines"
        bare_start = time.perf_counter()
        for _ in range(n):
            subprocess.run([sys.executable, "-c", probe], env=env, check=True, timeout=60)
        bare = time.perf_counter() - bare_start
    per_stage = total / n * 1000
    runner_own = (total - child) / n * 1000
    print(f"bench: runner wall time for {n} no-op stages: {total:.2f} s = {per_stage:.1f} ms per stage")
    print(f"bench: of which stage processes (spawn to exit, as seen by the runner): {child / n * 1000:.1f} ms "
          f"per stage; bare python start + imports: {bare / n * 1000:.1f} ms per process")
    print(f"bench: runner's own overhead around each stage: {runner_own:.1f} ms (target <= 50 ms); "
          f"per-stage wall / bare process start ratio: {per_stage / (bare / n * 1000):.2f}")


def run_until(cmd: list[str], cwd: Path, env: dict[str, str], stage: str,
              timeout: float = 3600) -> tuple[float, float | None, int, str]:
    """Run `cmd` to its end; its wall time and when the runner's line saying how `stage` ended appeared."""
    verdict = re.compile(rf"^\[{re.escape(stage)}\] (ok|FAILED|ERROR|cached|skipped)\b")
    start = time.perf_counter()
    seen: float | None = None
    lines: list[str] = []
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(timeout, proc.kill)  # a hung run ends the benchmark, never hangs it
    timer.start()
    try:
        for line in proc.stdout:
            lines.append(line)
            if seen is None and verdict.match(line):
                seen = time.perf_counter() - start
        code = proc.wait()
    finally:
        timer.cancel()
    return time.perf_counter() - start, seen, code, "".join(lines)


def touch_hil_suite(root: Path, quick: bool) -> Path:
    """A change that touches only the HIL suites: a comment appended to one of them."""
    path = root / ("hil/suite.txt" if quick else "hil_tests/conftest.py")
    path.write_text(path.read_text() + "\n# touched by benchmarks/pipeline.py\n")
    return path


def graph(quick: bool = False) -> None:
    """Cold runs with the graph and as a line, then a change to the HIL suites only on the graph's cache."""
    from tests.fixture_pipelines import make_project, shaped_config
    from tests.scratch import scratch_copy

    env = child_env(CI="true")
    if quick:
        env.update(PYTHONPATH=str(REPO), HILCI_PIPELINE="tests.fixture_pipelines:SHAPED")

    def project(folder: Path) -> Path:
        if not quick:
            return scratch_copy(folder)
        root = make_project(folder, shaped_config(0.3))
        (root / "hil").mkdir()
        (root / "hil" / "suite.txt").write_text("a HIL suite\n")
        return root

    cmd = [sys.executable, "-m", "hilci", "run"]
    times = {}
    with tempfile.TemporaryDirectory(prefix="hilci-graph-") as tmp:
        for name, extra in (("line", ["--jobs", "1"]), ("graph", [])):
            root = project(Path(tmp) / name)
            total, hil_at, code, out = run_until(cmd + extra, root, env, "hil")
            if code not in (0, 1) or hil_at is None:
                print(out[-3000:])
                raise SystemExit(f"bench: cold run ({name}) failed with exit code {code}")
            if code:  # a failed gate (say a unit test) still times the run: said, not hidden
                print(f"bench: note: cold run ({name}) exit code 1: "
                      f"{', '.join(f'{k}={v}' for k, v in statuses(root).items())}")
            times[name] = (total, hil_at)
        touch_hil_suite(root, quick)  # the graph's project, its cache warm from its cold run
        total, hil_at, code, out = run_until(cmd, root, env, "hil")
        after = statuses(root)
    if code not in (0, 1) or hil_at is None:
        print(out[-3000:])
        raise SystemExit(f"bench: the run after a change to the HIL suites failed with exit code {code}")
    (line, line_hil), (cold, cold_hil) = times["line"], times["graph"]
    jobs = default_jobs()
    print(f"bench: pipeline cold run, graph (--jobs {jobs}) vs line (--jobs 1): {cold:.2f} s vs {line:.2f} s, "
          f"ratio {cold / line:.3f}; first HIL verdict at {cold_hil or 0:.2f} s vs {line_hil or 0:.2f} s")
    print(f"bench: pipeline change to hil_tests/ only: first HIL verdict {hil_at:.2f} s, run over in {total:.2f} s "
          f"({', '.join(f'{k}={v}' for k, v in after.items())})")
    print(f"bench: pipeline commit-to-first-HIL-verdict / full cold run: {hil_at / cold:.3f} (goal <= 0.2; "
          f"against the line's cold run {hil_at / line:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="stages for the cold/warm pair (default: the whole pipeline)")
    parser.add_argument("--skip-cold-warm", action="store_true")
    parser.add_argument("--skip-graph", action="store_true", help="skip the graph-vs-line and HIL-verdict runs")
    parser.add_argument("--quick", action="store_true", help="the fixture pipeline and 5 no-op stages (a smoke run)")
    args = parser.parse_args()
    if not args.skip_cold_warm:
        cold_warm(args.only, quick=args.quick)
    overhead(5 if args.quick else 50)
    if not args.skip_graph:
        graph(quick=args.quick)


if __name__ == "__main__":
    main()
