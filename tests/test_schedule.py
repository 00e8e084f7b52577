"""The runner's scheduling policy in one place (`hilci.local.schedule`): the stages as a graph of their needs.

A stage may start once what it needs passed or was cached, up to `jobs` at once; a stage that does not pass skips
its dependents (naming it) while independent stages still run; an abort skips everything not started; a
gathering stage waits for all the others; `jobs=1` is the line, in pipeline order."""

from __future__ import annotations

import pytest

from hilci.local.schedule import Schedule, default_jobs
from hilci.pipeline.model import Stage, StageOutcome, Status


def s(name: str, *needs: str, gathers: bool = False, jobs: int | str = 1) -> Stage:
    return Stage(name=name, pod="cpu", does=name, entry="x:y", needs=needs, gathers=gathers, jobs=jobs)


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


# --- stage weights: a stage takes its `jobs` of --jobs while it runs -------------------------------------------

def test_stages_start_while_their_weights_fit_in_jobs():
    schedule = Schedule([s("heavy", jobs=2), s("a"), s("b")], jobs=3)
    assert names(schedule.ready()) == ["heavy", "a"]  # 2 + 1 = 3: b would make 4
    end(schedule, "a")
    assert names(schedule.ready()) == ["b"]
    end(schedule, "heavy")
    assert names(schedule.ready()) == [] and schedule.running == {"b"}


def test_a_stage_weighing_all_runs_alone_and_so_does_one_heavier_than_jobs():
    schedule = Schedule([s("build", jobs="all"), s("train"), s("quantize", "train")], jobs=4)
    assert names(schedule.ready()) == ["build"]  # it takes all four
    end(schedule, "build")
    assert names(schedule.ready()) == ["train"]
    schedule = Schedule([s("small"), s("huge", jobs=8), s("after")], jobs=2)
    assert names(schedule.ready()) == ["small"]  # huge does not fit beside small, and after does not overtake it
    end(schedule, "small")
    assert names(schedule.ready()) == ["huge"]  # heavier than --jobs: it runs, alone
    assert names(schedule.ready()) == []
    end(schedule, "huge")
    assert names(schedule.ready()) == ["after"]


def test_a_light_stage_does_not_overtake_a_ready_heavy_one():
    schedule = Schedule([s("a"), s("heavy", jobs=2), s("light")], jobs=2)
    assert names(schedule.ready()) == ["a"]
    assert names(schedule.ready()) == []  # light would fit beside a, but heavy, ready before it, waits first
    end(schedule, "a")
    assert names(schedule.ready()) == ["heavy"]
    end(schedule, "heavy")
    assert names(schedule.ready()) == ["light"]


def test_a_stage_restored_from_the_cache_takes_no_job():
    schedule = Schedule([s("build", jobs="all"), s("train"), s("quantize", "train")], jobs=2)
    assert names(schedule.ready(free=lambda st: st.name != "build")) == ["build", "train"]  # train is a hit
    end(schedule, "train", Status.CACHED)
    asked = []
    assert names(schedule.ready(free=lambda st: asked.append(st.name) or False)) == []  # a miss: it waits
    assert asked == ["quantize"]  # only a stage that does not fit is asked about
    end(schedule, "build")
    assert names(schedule.ready()) == ["quantize"]


def test_weights_with_jobs_1_are_still_the_line():
    assert line(Schedule([s("build", jobs="all"), s("train", jobs=3), s("hil", "train")], jobs=1), {}) == [
        ("build", "passed"), ("train", "passed"), ("hil", "passed")]
