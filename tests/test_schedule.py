"""The runner's scheduling policy in one place (`hilci.local.schedule`): stages in order, and the first that does
not pass (or an abort) skips every later one, each with the reason."""

from __future__ import annotations

from hilci.local.schedule import Schedule
from hilci.pipeline.model import Stage, StageOutcome, Status


def stages(*names: str) -> list[Stage]:
    return [Stage(name=n, pod="cpu", does=n, entry="x:y") for n in names]


def drain(schedule: Schedule, status: dict[str, str], aborted_at: str = "") -> list[tuple[str, str]]:
    seen = []
    while (stage := schedule.next()) is not None:
        seen.append((stage.name, status.get(stage.name, Status.PASSED)))
        outcome = StageOutcome(stage.name, status.get(stage.name, Status.PASSED))
        seen += [(s.name, why) for s, why in schedule.finished(stage, outcome,
                                                               "SIGINT" if stage.name == aborted_at else "")]
    return seen


def test_stages_run_in_order_while_they_pass_or_are_cached():
    assert drain(Schedule(stages("a", "b", "c")), {"b": Status.CACHED}) == [
        ("a", "passed"), ("b", "cached"), ("c", "passed")]


def test_the_first_stage_that_does_not_pass_skips_the_rest_with_the_reason():
    assert drain(Schedule(stages("a", "b", "c", "d")), {"b": Status.FAILED}) == [
        ("a", "passed"), ("b", "failed"), ("c", "stage 'b' failed"), ("d", "stage 'b' failed")]


def test_an_abort_skips_the_rest_even_after_a_pass():
    assert drain(Schedule(stages("a", "b", "c")), {}, aborted_at="a") == [
        ("a", "passed"), ("b", "pipeline aborted by SIGINT"), ("c", "pipeline aborted by SIGINT")]
