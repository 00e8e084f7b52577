"""Pipeline benchmarks, measured side by side in one run:

1. cold `hilci run` (empty cache) against a warm run with nothing changed (ratio warm/cold; target <= 0.1);
2. the runner's own overhead around 50 no-op stages (target <= 50 ms per stage), next to the bare cost of
   starting 50 Python processes that import what `hilci stage` imports.

The cold/warm pair runs in a scratch copy of the repository's tracked files, so the working tree and its cache
are left alone. Usage: python benchmarks/pipeline.py [--only build,train,...] [--skip-cold-warm] [--quick]

--quick (what `make test` runs, through tests/test_benchmarks.py) measures the same things on the small
fixture pipeline (tests/fixture_pipelines.py) and 5 no-op stages: it proves the script runs, in seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.scratch import child_env  # noqa: E402 - needs the repository on sys.path


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
        total, code, out = run([sys.executable, "-m", "hilci", "run", "--no-cache", "--only", only], root, env)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="stages for the cold/warm pair (default: the whole pipeline)")
    parser.add_argument("--skip-cold-warm", action="store_true")
    parser.add_argument("--quick", action="store_true", help="the fixture pipeline and 5 no-op stages (a smoke run)")
    args = parser.parse_args()
    if not args.skip_cold_warm:
        cold_warm(args.only, quick=args.quick)
    overhead(5 if args.quick else 50)


if __name__ == "__main__":
    main()
