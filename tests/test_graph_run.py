"""`hilci run` follows the graph of the stages' needs, through real subprocesses (the fixture pipeline GRAPH).

Overlap is proved by order, never by time: `slow` waits for a file that a stage started after it writes (a line
would never see it and fail its gate), and the runner's own start/end lines are read in the order it wrote them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hilci.results import junit
from tests.conftest import hilci
from tests.fixture_pipelines import make_project

pytestmark = [pytest.mark.pipeline]  # what it needs: the fast tier leaves it out

GRAPH = "tests.fixture_pipelines:GRAPH"


def events(stdout: str) -> list[str]:
    """The runner's plain start/end lines as 'stage started' / 'stage ok' / 'stage FAILED', in order."""
    out = []
    for line in stdout.splitlines():
        if line.startswith("[") and "] " in line:
            name, _, rest = line[1:].partition("] ")
            out.append(f"{name} {rest.split()[0].rstrip(':')}")
    return out


def stage_rows(root: Path) -> dict[str, dict]:
    return {s["name"]: s for s in json.loads((root / "reports" / "run.json").read_text())["stages"]}


def test_an_independent_stage_runs_while_another_runs(tmp_path: Path):
    make_project(tmp_path, "slow: {wait_for: after.done}\nquick: {}\nafter: {write: {after.done: x}}\ngather: {}\n")
    proc = hilci(tmp_path, "run", "--jobs", "3", pipeline=GRAPH)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = events(proc.stdout)
    # slow started first and could end only after `after` (started once quick passed) wrote its file
    assert seen.index("slow started") < seen.index("quick ok") < seen.index("after started") < seen.index("slow ok") \
        < seen.index("gather started"), seen
    assert seen.index("after ok") < seen.index("gather started"), seen  # the gathering stage waits for all
    rows = stage_rows(tmp_path)
    assert {n: r["status"] for n, r in rows.items()} == dict.fromkeys(("slow", "quick", "after", "gather"), "passed")
    assert list(rows) == ["slow", "quick", "after", "gather"]  # reports in pipeline order, whatever ended first
    slow, after = rows["slow"], rows["after"]  # the timeline's bars overlap
    assert slow["start_s"] <= after["start_s"] < slow["start_s"] + slow["duration_s"]
    assert [c.suite for c in junit.read_cases(tmp_path / "reports" / "junit.xml")] == [
        "hilci.slow", "hilci.quick", "hilci.after", "hilci.gather"]  # one suite per stage, as before


def test_a_failed_need_skips_its_dependents_with_the_reason_while_an_independent_stage_finishes(tmp_path: Path):
    # slow ends only once the runner has skipped `after` (its JUnit appears): it was still running then
    make_project(tmp_path, "slow: {wait_for: reports/junit/after.xml}\nquick: {value: 0.1}\nafter: {}\ngather: {}\n")
    proc = hilci(tmp_path, "run", "--jobs", "2", pipeline=GRAPH)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a failed gate fails the run, as before
    seen = events(proc.stdout)
    assert seen.index("quick FAILED") < seen.index("slow ok"), seen  # slow went on after quick failed
    rows = stage_rows(tmp_path)
    assert {n: r["status"] for n, r in rows.items()} == {
        "slow": "passed", "quick": "failed", "after": "skipped", "gather": "skipped"}
    assert rows["after"]["reason"] == "stage 'quick' failed"
    assert rows["gather"]["reason"] == "stage 'quick' failed"
    case = junit.read_cases(tmp_path / "reports" / "junit" / "after.xml")[0]
    assert case.status == "skipped" and case.message == "skipped: stage 'quick' failed"
    assert "after" not in (tmp_path / "runs.log").read_text().split()


def test_jobs_1_runs_the_stages_one_after_another_in_pipeline_order(tmp_path: Path):
    make_project(tmp_path, "slow: {}\nquick: {}\nafter: {}\ngather: {}\n")
    proc = hilci(tmp_path, "run", "--jobs", "1", pipeline=GRAPH)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert events(proc.stdout) == ["slow started", "slow ok", "quick started", "quick ok", "after started",
                                   "after ok", "gather started", "gather ok"]


@pytest.mark.parametrize("jobs", ["0", "-2"])
def test_jobs_below_one_is_one_line_and_exit_2(tmp_path: Path, jobs: str):
    make_project(tmp_path, "slow: {}\n")
    proc = hilci(tmp_path, "run", "--jobs", jobs, pipeline=GRAPH)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"hilci: error: --jobs must be at least 1 (got {jobs})"]


WEIGHTED = "tests.fixture_pipelines:WEIGHTED"


def test_a_stage_weighing_all_runs_alone_and_a_cache_hit_is_restored_beside_it(tmp_path: Path):
    make_project(tmp_path, "heavy: {}\nlight: {write: {out/light/x.txt: x}}\nafter: {}\n")
    proc = hilci(tmp_path, "run", "--jobs", "3", pipeline=WEIGHTED)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert events(proc.stdout) == ["heavy started", "heavy ok", "light started", "light ok", "after started",
                                   "after ok"]  # three jobs, but heavy takes them all
    # light is a cache hit now: restored at once, it takes no job, so heavy sees its output while it runs
    (tmp_path / "out" / "light" / "x.txt").unlink()
    (tmp_path / "hilci.yaml").write_text("heavy: {wait_for: out/light/x.txt, wait_s: 15}\n"
                                         "light: {write: {out/light/x.txt: x}}\nafter: {}\n")
    proc = hilci(tmp_path, "run", "--jobs", "3", pipeline=WEIGHTED)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {n: r["status"] for n, r in stage_rows(tmp_path).items()} == {
        "heavy": "passed", "light": "cached", "after": "passed"}
    seen = events(proc.stdout)
    assert seen.index("heavy ok") < seen.index("after started"), seen  # after (a miss) waited for heavy


def test_a_bad_stage_weight_is_one_line_and_exit_2(tmp_path: Path):
    make_project(tmp_path, "heavy: {}\n")
    proc = hilci(tmp_path, "run", pipeline="tests.fixture_pipelines:BAD_WEIGHT")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "hilci: error: stage 'heavy': jobs 0 must be a whole number of at least 1, or 'all' (how many of "
        "`hilci run --jobs` it takes while it runs)"]
