"""The pipeline model: stages, boards and their validation. Pure data; nothing here runs anything.

The one pipeline definition (`ci.definition.PIPELINE`) is made of these classes and consumed by two engines:
the local runner (`hilci run`) and the Jenkinsfile renderer (`hilci jenkinsfile`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


class Status(str, Enum):
    """A stage's or a testcase's outcome; a `str`, so it reads and writes as the plain word in JSON and JUnit."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    CACHED = "cached"  # a stage only: restored from the stage cache

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass
class StageOutcome:
    """What happened to one stage in this run: the row of the summary table and of the report's timeline."""

    name: str
    status: str
    start_s: float = 0.0  # offset from the start of the run
    duration_s: float = 0.0
    reason: str = ""
    exit_code: int | None = None
    cache_key: str = ""
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (Status.PASSED, Status.CACHED)


class DefinitionError(ValueError):
    """The pipeline definition is invalid; the message names the stage and what is wrong."""


@dataclass(frozen=True)
class Board:
    """A Jetson board kind that `convert` and `hil` run on in Jenkins: its pod template and its rig."""

    name: str  # e.g. "orin-nx"; pod template podtemplates/jetson-<name>.yaml, Jenkins lock "rig-<name>"
    rig: str  # repo-relative rig YAML used on that board

    @property
    def pod(self) -> str:
        return f"jetson-{self.name}"


@dataclass(frozen=True)
class Stage:
    """One stage: where it runs, what it runs, and what it reads and writes (the cache key and restore set)."""

    name: str
    pod: str  # pod template name (podtemplates/<pod>.yaml); "jetson" for matrix stages (one per board)
    does: str  # one line, shown in the summary and the Jenkinsfile
    entry: str  # "module:function" called by `hilci stage NAME` with a StageContext
    inputs: tuple[str, ...] = ()  # repo-relative files, directories or globs whose contents key the cache
    outputs: tuple[str, ...] = ()  # repo-relative files or directories the stage writes; restored on a cache hit
    needs: tuple[str, ...] = ()  # stages that must have passed before this one
    tools: tuple[str, ...] = ()  # distributions whose installed versions key the cache
    matrix: bool = False  # in Jenkins: one parallel branch per board; locally: once, on --rig
    cacheable: bool = True
    rerun_on_real_rig: bool = False  # cache only runs on an emulated rig (`emulate: true`): hardware changes
    timeout_s: float = 1800.0
    archive: tuple[str, ...] = ()  # repo-relative globs Jenkins archives with fingerprints
    gathers: bool = False  # in Jenkins: runs even after failed stages and unstashes every stage's reports

    @property
    def command(self) -> str:
        """The command both engines run, so the local run and Jenkins cannot drift."""
        return f"hilci stage {self.name}"


@dataclass(frozen=True)
class Pipeline:
    """Stages in execution order plus the Jetson boards of the matrix."""

    stages: tuple[Stage, ...]
    boards: tuple[Board, ...] = ()
    podtemplates_dir: str = "podtemplates"
    config_file: str = "hilci.yaml"
    extra: dict = field(default_factory=dict)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        known = ", ".join(s.name for s in self.stages)
        raise DefinitionError(f"unknown stage {name!r} (stages: {known})")

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def needs_closure(self, stage: Stage) -> list[Stage]:
        """Every stage `stage` needs, directly or not, in pipeline order."""
        seen: set[str] = set()
        todo = list(stage.needs)
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.stage(name).needs)
        return [s for s in self.stages if s.name in seen]

    def pod_templates(self, stage: Stage) -> list[str]:
        """The pod template files a stage runs in: one, or one per board for matrix stages."""
        if stage.matrix:
            return [f"{self.podtemplates_dir}/{b.pod}.yaml" for b in self.boards]
        return [f"{self.podtemplates_dir}/{stage.pod}.yaml"]

    def validate(self, root: Path | None = None) -> Pipeline:
        """Raise DefinitionError on the first problem; with `root`, also check pod template files exist."""
        seen: set[str] = set()
        for stage in self.stages:
            if not stage.name or not stage.name.replace("-", "").replace("_", "").isalnum():
                raise DefinitionError(f"stage name {stage.name!r} must be letters, digits, '-' or '_'")
            if stage.name in seen:
                raise DefinitionError(f"duplicate stage name {stage.name!r}")
            seen.add(stage.name)
            if ":" not in stage.entry:
                raise DefinitionError(f"stage {stage.name!r}: entry {stage.entry!r} is not 'module:function'")
        for stage in self.stages:
            for need in stage.needs:
                if need not in seen:
                    raise DefinitionError(f"stage {stage.name!r} needs unknown stage {need!r}")
        self._check_cycles()
        owner: dict[str, str] = {}
        for stage in self.stages:
            for out in stage.outputs:
                key = out.rstrip("/")
                if key in owner:
                    raise DefinitionError(
                        f"output {out!r} is declared by two stages: {owner[key]!r} and {stage.name!r}")
                owner[key] = stage.name
        if any(s.matrix for s in self.stages) and not self.boards:
            raise DefinitionError("matrix stages need at least one board")
        if root is not None:
            for stage in self.stages:
                for template in self.pod_templates(stage):
                    if not (root / template).is_file():
                        raise DefinitionError(f"stage {stage.name!r}: unknown pod template {template} (no such file)")
        return self

    def _check_cycles(self) -> None:
        needs = {s.name: s.needs for s in self.stages}
        state: dict[str, int] = {}  # 1 visiting, 2 done

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = path[path.index(name):] + [name]
                raise DefinitionError("cycle in stage needs: " + " -> ".join(cycle))
            state[name] = 1
            for need in needs[name]:
                visit(need, path + [name])
            state[name] = 2

        for name in needs:
            visit(name, [])
        order = {s.name: i for i, s in enumerate(self.stages)}
        for stage in self.stages:
            for need in stage.needs:
                if order[need] > order[stage.name]:
                    raise DefinitionError(f"stage {stage.name!r} is listed before {need!r}, which it needs")
