"""The runner's scheduling policy in one place (`hilci.local.schedule`): the stages as a graph of their needs.

A stage may start once what it needs passed or was cached, up to `jobs` at once; a stage that does not pass skips
its dependents (naming it) while independent stages still run; an abort skips everything not started; a
gathering stage waits for all the others; `jobs=1` is the line, in pipeline order."""

from __future__ import annotations

import pytest

from hilci.local.schedule import Schedule, default_jobs
from hilci.pipeline.model import Stage, StageOutcome, Status


def s(name: str, *needs: str, gathers: bool = False) -> Stage:
    return Stage(name=name, pod="cpu", does=name, entry="x:y", needs=needs, gathers=gathers)


# build and train are independent; quantize needs train; hil needs quantize; report gathers everything
GRAPH = [s("build"), s("train"), s("quantize", "train"), s("hil", "quantize"), s("report", gathers=True)]


def names(stages: list[Stage]) -> list[str]:
    return [st.name for st in stages]


def end(schedule: Schedule, name: str, status: str = Status.PASSED) -> list[tuple[str, str]]:
    stage = next(st for st in schedule.stages if st.name == name)
    return [(st.name, why) for st, why in schedule.finished(stage, StageOutcome(name, status))]


def line(schedule: Schedule, status: dict[str, str]) -> list[tuple[str, str]]:
    """Run to the end one stage at a time, the first ready one first; what ran and what was skipped."""
    seen = []
    while not schedule.done:
        ready = schedule.ready()
        assert len(ready) == 1, names(ready)
        stage = ready[0]
        seen.append((stage.name, status.get(stage.name, Status.PASSED)))
        seen += end(schedule, stage.name, status.get(stage.name, Status.PASSED))
    return seen


def test_independent_stages_start_together_and_a_stage_starts_when_its_needs_passed():
    schedule = Schedule(GRAPH, jobs=4)
    assert names(schedule.ready()) == ["build", "train"]
    assert names(schedule.ready()) == []  # nothing new until something ends
    assert end(schedule, "train") == []
    assert names(schedule.ready()) == ["quantize"]  # build still runs beside it
    assert schedule.running == {"build", "quantize"}
    end(schedule, "quantize", Status.CACHED)  # a cached need counts as passed
    assert names(schedule.ready()) == ["hil"]
    end(schedule, "hil")
    assert names(schedule.ready()) == []  # report waits for build too
    end(schedule, "build")
    assert names(schedule.ready()) == ["report"]
    end(schedule, "report")
    assert schedule.done


def test_a_failed_stage_skips_its_dependents_naming_it_while_independent_stages_run():
    schedule = Schedule(GRAPH, jobs=4)
    schedule.ready()
    assert end(schedule, "train", Status.FAILED) == [
        ("quantize", "stage 'train' failed"), ("hil", "stage 'train' failed"), ("report", "stage 'train' failed")]
    assert schedule.running == {"build"} and not schedule.done  # build goes on
    assert end(schedule, "build") == []
    assert schedule.done


def test_jobs_bounds_the_stages_running_at_once():
    schedule = Schedule([s("a"), s("b"), s("c")], jobs=2)
    assert names(schedule.ready()) == ["a", "b"]
    end(schedule, "b")
    assert names(schedule.ready()) == ["c"]


def test_jobs_1_is_the_line_in_pipeline_order():
    assert line(Schedule(GRAPH, jobs=1), {"quantize": Status.CACHED}) == [
        ("build", "passed"), ("train", "passed"), ("quantize", "cached"), ("hil", "passed"), ("report", "passed")]


def test_jobs_1_still_runs_what_does_not_depend_on_a_failure():
    assert line(Schedule(GRAPH, jobs=1), {"build": Status.ERROR}) == [
        ("build", "error"), ("report", "stage 'build' error"), ("train", "passed"), ("quantize", "passed"),
        ("hil", "passed")]


def test_an_abort_skips_every_stage_not_started():
    schedule = Schedule(GRAPH, jobs=2)
    schedule.ready()
    assert [(st.name, why) for st, why in schedule.abort("SIGINT")] == [
        ("quantize", "pipeline aborted by SIGINT"), ("hil", "pipeline aborted by SIGINT"),
        ("report", "pipeline aborted by SIGINT")]
    assert names(schedule.ready()) == []


def test_a_need_left_out_by_only_or_from_counts_as_met():
    schedule = Schedule([s("hil", "convert"), s("report", gathers=True)], jobs=2)
    assert names(schedule.ready()) == ["hil"]


def test_jobs_must_be_at_least_one_and_defaults_to_the_cpus():
    with pytest.raises(ValueError, match="at least 1"):
        Schedule(GRAPH, jobs=0)
    assert default_jobs() >= 1
