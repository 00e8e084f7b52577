"""The pipeline model: stages, boards and their validation. Pure data; nothing here runs anything.

The one pipeline definition (`hilci.example.PIPELINE`) is made of these classes and consumed by two engines:
the local runner (`hilci run`) and the Jenkinsfile renderer (`hilci jenkinsfile`).
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from hilci.errors import DefinitionError

DEFAULT_RIG = "hil_tests/rigs/sim.yaml"  # the emulated rig: matrix stages run on it when no rig is named


class Status(str, Enum):
    """A stage's or a testcase's outcome; a `str`, so it reads and writes as the plain word in JSON and JUnit."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    CACHED = "cached"  # a stage only: restored from the stage cache
    # a stage only: every failed testcase was the rig's (`hilci stage` exit 3), as the Jenkinsfile's NOT_BUILT stage
    NOT_BUILT = "not_built"

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
    needs_tools: tuple[str, ...] = ()  # what must be installed to run it: programs or Python packages (`hilci doctor`)
    settings: str = ""  # "module:Class" typing the stage's hilci.yaml section ("" = a free-form mapping)
    matrix: bool = False  # in Jenkins: one parallel branch per board; locally: once, on --rig
    cacheable: bool = True
    rerun_on_real_rig: bool = False  # cache only runs on an emulated rig (`emulate: true`): hardware changes
    timeout_s: float = 1800.0
    archive: tuple[str, ...] = ()  # repo-relative globs Jenkins archives with fingerprints
    gathers: bool = False  # in Jenkins: runs even after failed stages and unstashes every stage's reports
    uses_store: bool = False  # its body reads or writes the store itself (engines, history): it gets the keys
    jobs: int | str = 1  # how many of `hilci run --jobs` it takes while it runs: a whole number, or "all" (alone)
    env: tuple[str, ...] = ()  # environment variables the stage reads: their values key the cache
    exact_inputs: bool = False  # inputs keyed by their bytes (it lints or reads text), else by meaning (no comments)

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
    default_rig: str = DEFAULT_RIG
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

    def select(self, only: tuple[str, ...] = (), start_from: str | None = None) -> list[Stage]:
        """The stages `--only` and `--from` pick, in pipeline order; unknown names and contradictions refused."""
        for name in (*only, *([start_from] if start_from else [])):
            self.stage(name)  # raises DefinitionError naming the unknown stage
        stages = list(self.stages)
        if start_from:
            stages = stages[self.names.index(start_from):]
            before = [n for n in only if n not in {s.name for s in stages}]
            if before:
                raise DefinitionError(f"--only {','.join(before)} comes before --from {start_from}: "
                                      "give one of them, or --only stages at or after --from")
        if only:
            stages = [s for s in stages if s.name in only]
        return stages

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
        """Raise DefinitionError on the first problem; with `root`, also check pod template files exist (when the
        project has pod templates at all: a project run only locally needs none; `hilci jenkinsfile` needs them).
        Every stage's entry (and settings class) must exist: found by reading the module, not importing it."""
        seen: set[str] = set()
        for stage in self.stages:
            if not stage.name or not stage.name.replace("-", "").replace("_", "").isalnum():
                raise DefinitionError(f"stage name {stage.name!r} must be letters, digits, '-' or '_'")
            if stage.name in seen:
                raise DefinitionError(f"duplicate stage name {stage.name!r}")
            seen.add(stage.name)
        for stage in self.stages:
            _check_jobs(stage)
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
        if root is not None and (root / self.podtemplates_dir).is_dir():  # none at all: a local-only project
            for stage in self.stages:
                for template in self.pod_templates(stage):
                    if not (root / template).is_file():
                        raise DefinitionError(f"stage {stage.name!r}: unknown pod template {template} (no such file)")
        for stage in self.stages:  # last: the structure above is cheaper to check, and says more when wrong
            _check_reference(stage, "entry", stage.entry, ast.FunctionDef)
            if stage.settings:
                _check_reference(stage, "settings", stage.settings, ast.ClassDef)
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


def _check_jobs(stage: Stage) -> None:
    """A stage's weight under `--jobs`: a whole number of at least 1, or "all"."""
    jobs = stage.jobs
    if jobs == "all" or (isinstance(jobs, int) and not isinstance(jobs, bool) and jobs >= 1):
        return
    raise DefinitionError(f"stage {stage.name!r}: jobs {jobs!r} must be a whole number of at least 1, or 'all' "
                          "(how many of `hilci run --jobs` it takes while it runs)")


def _check_reference(stage: Stage, what: str, spec: str, kind: type) -> None:
    """`module:name` must name a module that exists and defines `name` at its top level (a function for an
    entry, a class for settings), found without importing the module: the `train` entry's module imports no
    torch here, and a definition check must not need the GPU stack installed."""
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name.isidentifier():
        raise DefinitionError(f"stage {stage.name!r}: {what} {spec!r} is not 'module:{'function' if kind is ast.FunctionDef else 'Class'}'")
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        found, reason = None, f" ({exc})"
    else:
        reason = ""
    origin = getattr(found, "origin", None)
    if found is None or not origin or not origin.endswith(".py"):
        raise DefinitionError(f"stage {stage.name!r}: {what} {spec!r}: no module {module_name}{reason}")
    try:
        tree = ast.parse(Path(origin).read_bytes(), filename=origin)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DefinitionError(f"stage {stage.name!r}: {what} {spec!r}: {origin} cannot be read ({exc})") from None
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef) if kind is ast.FunctionDef else (kind,)
    for node in tree.body:
        if isinstance(node, kinds) and node.name == name:
            return
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.ImportFrom)) and name in _bound_names(node):
            return  # bound another way (`build = make_build()`, a re-export): trust it
    raise DefinitionError(f"stage {stage.name!r}: {what} {spec!r}: {module_name} defines no {name}")


def _bound_names(node: ast.AST) -> set[str]:
    if isinstance(node, ast.ImportFrom):
        return {alias.asname or alias.name for alias in node.names}
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return {t.id for t in targets if isinstance(t, ast.Name)}
