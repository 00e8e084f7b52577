"""The runner's scheduling policy, in one place: which stage runs next, and which stages an outcome skips.

Today a sequence in pipeline order that stops at the first stage that does not pass (later stages are
reported as skipped, with the reason). A graph of stages would replace this class and nothing else."""

from __future__ import annotations

from hilci.pipeline.model import Pipeline, Stage, StageOutcome


def select_stages(pipeline: Pipeline, only: tuple[str, ...], start_from: str | None) -> list[Stage]:
    return pipeline.select(only, start_from)


class Schedule:
    """The selected stages, one after another; the first that does not pass skips all that follow."""

    def __init__(self, stages: list[Stage]):
        self.stages = list(stages)
        self._pending = list(stages)

    def next(self) -> Stage | None:
        """The stage to run now, or None when the run is over."""
        return self._pending.pop(0) if self._pending else None

    def finished(self, stage: Stage, outcome: StageOutcome, aborted_by: str = "") -> list[tuple[Stage, str]]:
        """Take one stage's outcome; the stages it skips, each with the reason (none when it passed)."""
        if outcome.ok and not aborted_by:
            return []
        why = f"pipeline aborted by {aborted_by}" if aborted_by else f"stage '{stage.name}' {outcome.status}"
        skipped, self._pending = [(s, why) for s in self._pending], []
        return skipped
