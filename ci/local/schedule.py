"""The runner's scheduling policy, in one place: which stages may start now, and which stages an outcome skips.

The stages form a graph through their `needs`: a stage may start once every stage it needs (among those
selected) has passed or was restored from the cache, so independent stages run side by side while the weights of
the running stages add up to at most `jobs`. A stage weighs its `jobs` field (1 unless it says more; "all": every
job, so it runs alone; a stage heavier than `jobs` runs alone too). Ready stages start in pipeline order and none
overtakes a ready stage that does not fit yet (a heavy stage is never starved by light ones); a stage the runner
will restore from the cache at once weighs nothing and starts whatever runs. A stage whose need did not pass is skipped with the reason, naming the stage that did not pass (its
dependents too, naming the same stage); stages that do not depend on it still run. A stage that `gathers`
(the report) waits for every other selected stage and is skipped, like a dependent, when one did not pass.

A need that `--only`/`--from` left out is taken as satisfied: the user chose to run from what is there.
With `jobs=1` the stages start one at a time in pipeline order (the definition lists needs first), as a line.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from hilci.pipeline.model import Pipeline, Stage, StageOutcome


def default_jobs() -> int:
    """What this machine can take: one job per CPU, at least one. A stage counts as its `jobs` weight (1 unless it
    says more) whatever its tools use inside: lower --jobs for a lighter load."""
    return max(os.cpu_count() or 1, 1)


def select_stages(pipeline: Pipeline, only: tuple[str, ...], start_from: str | None) -> list[Stage]:
    return pipeline.select(only, start_from)


class Schedule:
    """The selected stages as a graph of their needs; the runner asks what may start and tells what ended."""

    def __init__(self, stages: list[Stage], jobs: int = 1):
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1 (got {jobs})")
        self.stages = list(stages)
        self.jobs = jobs
        names = {s.name for s in self.stages}
        others = tuple(s.name for s in self.stages if not s.gathers)
        self._needs = {s.name: (tuple(n for n in others if n != s.name) if s.gathers
                                else tuple(n for n in s.needs if n in names)) for s in self.stages}
        self._pending = list(self.stages)
        self._running: set[str] = set()
        self._taken: dict[str, int] = {}  # running stage -> the jobs it takes
        self._ok: set[str] = set()
        self._blocked: dict[str, str] = {}  # stage that did not pass, or was skipped for it -> the reason

    @property
    def running(self) -> set[str]:
        return set(self._running)

    @property
    def done(self) -> bool:
        """Nothing left to start and nothing running."""
        return not self._pending and not self._running

    def needs(self, stage: Stage) -> tuple[str, ...]:
        """What `stage` waits for in this run (a gathering stage: every other selected stage)."""
        return self._needs[stage.name]

    def weight(self, stage: Stage) -> int:
        """The jobs `stage` takes while it runs: its `jobs` ("all": every one), at most `jobs` (so a stage heavier
        than --jobs still runs, alone)."""
        wanted = self.jobs if stage.jobs == "all" else int(stage.jobs)
        return max(1, min(wanted, self.jobs))

    def ready(self, free: Callable[[Stage], bool] | None = None) -> list[Stage]:
        """The stages to start now, in pipeline order, while their weights fit in `jobs`; each is taken as running.
        `free(stage)`, asked only of a ready stage that does not fit: true when it will be restored from the cache
        at once (it then takes nothing)."""
        started = []
        held = False  # a ready stage did not fit: the ready stages after it wait for it (no overtaking)
        for stage in list(self._pending):
            if not all(n in self._ok for n in self._needs[stage.name]):
                continue
            take = self.weight(stage)
            if held or sum(self._taken.values()) + take > self.jobs:
                if free is None or not free(stage):
                    held = True
                    continue
                take = 0
            self._pending.remove(stage)
            self._running.add(stage.name)
            self._taken[stage.name] = take
            started.append(stage)
        return started

    def finished(self, stage: Stage, outcome: StageOutcome) -> list[tuple[Stage, str]]:
        """Take one stage's outcome; the pending stages it skips now, each with the reason (none when it passed)."""
        self._running.discard(stage.name)
        self._taken.pop(stage.name, None)
        if outcome.ok:
            self._ok.add(stage.name)
            return []
        why = f"stage '{stage.name}' {outcome.status}"
        self._blocked[stage.name] = why
        skipped = []
        changed = True
        while changed:  # dependents of dependents too, each naming the stage that did not pass
            changed = False
            for later in list(self._pending):
                if any(n in self._blocked for n in self._needs[later.name]):
                    self._pending.remove(later)
                    self._blocked[later.name] = why
                    skipped.append((later, why))
                    changed = True
        order = {s.name: i for i, s in enumerate(self.stages)}
        return sorted(skipped, key=lambda pair: order[pair[0].name])

    def stuck(self) -> str:
        """The pending stages and what each still waits for (for an error that should never happen)."""
        return "; ".join(f"{s.name} waits for {', '.join(n for n in self._needs[s.name] if n not in self._ok)}"
                         for s in self._pending)

    def abort(self, aborted_by: str) -> list[tuple[Stage, str]]:
        """The run was aborted: every stage not started is skipped with that reason."""
        skipped, self._pending = [(s, f"pipeline aborted by {aborted_by}") for s in self._pending], []
        return skipped
