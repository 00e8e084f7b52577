"""`hilci jenkinsfile`: render the declarative Jenkinsfile from the one pipeline definition, and check it.

Every Jenkins stage runs `hilci stage NAME` (matrix stages: `--board B --rig RIG`) in a pod from
`podtemplates/`, the command the local runner runs, so Jenkins and `hilci run` cannot drift. The committed
`Jenkinsfile` must equal `render(PIPELINE)`; `hilci jenkinsfile --check` says where it does not.

Layout of the rendering, decided by stage fields only:
- non-matrix stages get `agent { kubernetes { yamlFile 'podtemplates/<pod>.yaml' ... } }`;
- stages that no need joins run as `parallel` branches (each stage in its own pod; a chain of them in sequence
  inside its branch), following the definition's `needs`, so `build` runs beside the whole model chain and the
  Jetson stages start once `quantize` passed, not when `build` ended;
- consecutive matrix stages form one group over the boards (one Jetson pod per board for all of them, so an
  engine built by `convert` is the one `hil` tests), its board's rig locked before the pod is asked for. At the
  top level the group is a Declarative `matrix`; inside a parallel branch, where Declarative allows no `matrix`,
  it is a scripted `parallel` of one branch per board in a `script {}` step (onBoard: the lock, `podTemplate`
  with the same attempts, `node`, the container), each board's stages as scripted stages with the same gates,
  publishing in `finally` and diagnostics when not passed;
- a failed stage archives its diagnostics (`podRetention onFailure()` would keep a pod only when the pod itself
  failed, never because a stage failed, so it is not used);
- "Restart from stage" is disabled: the gates read what passed in this build, and a restart skips those stages;
- the matrix's `when` runs before its rig lock (`beforeOptions true`), a scripted board's `if` before its lock:
  a skipped board (not in BOARDS, or cached) waits for nothing and asks for no pod;
- `parameters` declares what `hilci trigger --param` may pass (BOARDS);
- a stage runs only when the stages it `needs` passed; a `gathers` stage runs after failures too. Nothing may
  throw out of a stage (Declarative would skip every later stage, the gathering one included): hilciStage runs
  its steps inside catchError, junit allows empty results, and the pipeline's `post { always }` runs a gathering
  stage that a thrown error skipped anyway (a pod that failed all its attempts, an agent lost in `post`);
- a stage's `outputs` and JUnit file are stashed, and unstashed by the stages that need them (ONNX between
  pods while it is small); its `archive` globs are archived with fingerprints.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass
from pathlib import Path

from hilci.pipeline.model import Pipeline, Stage

JENKINSFILE = "Jenkinsfile"
CONTAINER = "hilci"  # the container of every pod template that runs `hilci stage`
AXIS = "BOARD"
POD_RETRIES = 2  # attempts in all (the agent's `retries`, as `retry(count:)`): not two retries after the first
BUILD_TIMEOUT_MIN_FLOOR = 60
# The shell steps of hilciStage and hilciPlan (the Groovy below is rendered with them): `hilci pods` runs the same.
INSTALL_STEP = ("if [ -f pyproject.toml ] || [ -f setup.py ]; then "
                "python -m pip install --quiet --no-deps --no-build-isolation -e .; fi")
PLAN_STEP = "hilci plan --json --jenkins --output reports/plan.json"


def stage_steps(pipeline: Pipeline, stage: Stage, board: str | None = None) -> list[str]:
    """The shell steps, in order, that the Jenkinsfile's hilciStage runs for `stage` (on `board`, for matrix
    stages) as `sh` receives them; a test runs hilciStage under Groovy and compares."""
    args = stage.name
    if board is not None:
        rig = next(b.rig for b in pipeline.boards if b.name == board)
        args = f'{stage.name} --board {board} --rig "${{HILCI_RIG:-{rig}}}"'
    return [INSTALL_STEP, f"hilci stage {args}"]


def build_environment(spec: str) -> dict[str, str]:
    """The variables the Jenkinsfile's `environment` sets for every step of every pod (`spec`: the pipeline)."""
    return {"HILCI_PIPELINE": spec} if spec else {}


def plan_steps() -> list[str]:
    """The shell steps of the plan stage's hilciPlan, in order."""
    return [INSTALL_STEP, PLAN_STEP]


def render(pipeline: Pipeline, spec: str = "", definition: str = "") -> str:
    """The Jenkinsfile text for `pipeline` (deterministic: equal definitions give equal bytes). `spec` is the
    pipeline's `module:attr`, set for every stage so Jenkins runs this pipeline; `definition` names its file."""
    out = _Writer()
    where = definition or spec or "the pipeline definition"
    out.lines(_HEADER.replace("{definition}", where).replace("@INSTALL_STEP@", INSTALL_STEP))
    out.lines(_PLAN_HEADER.replace("@PLAN_STEP@", PLAN_STEP))
    out.line(f"// The rig wired to each Jetson board ({where}: Pipeline.boards).")
    out.line("def rigFor(String board) {")
    rigs = ", ".join(f"{_q(b.name)}: {_q(b.rig)}" for b in pipeline.boards) or ":"
    out.line(f"    return [{rigs}][board]")
    out.line("}")
    out.line()
    if any(isinstance(step, Parallel) and any(unit[0].matrix for branch in step.branches for unit in branch)
           for step in layout(pipeline)):
        out.lines(_ON_BOARD.replace("@DIR@", pipeline.podtemplates_dir).replace("@CONTAINER@", CONTAINER)
                  .replace("@RETRIES@", str(POD_RETRIES)))
    out.line("pipeline {")
    with out.indent():
        out.line("agent none")
        environment = build_environment(spec)
        if environment:
            out.line("environment {  // every `hilci` command in every pod runs this pipeline")
            with out.indent():
                for name, value in environment.items():
                    out.line(f"{name} = {_q(value)}")
            out.line("}")
        out.line("options {")
        with out.indent():
            out.line(f"timeout(time: {_build_timeout_min(pipeline)}, unit: 'MINUTES')")
            out.line("disableConcurrentBuilds(abortPrevious: true)")
            out.line("buildDiscarder(logRotator(numToKeepStr: '30', artifactNumToKeepStr: '10'))")
            out.line("// A restart skips the stages before it, so their gates (hasPassed) would skip every later one.")
            out.line("disableRestartFromStage()")
        out.line("}")
        out.line("parameters {  // what `hilci trigger --param K=V` may pass")
        with out.indent():
            boards = ",".join(b.name for b in pipeline.boards)
            out.line(f"string(name: 'BOARDS', defaultValue: 'all', description: 'Jetson boards to run on: all, "
                     f"or some of {boards} (comma-separated)')")
        out.line("}")
        out.line("stages {")
        with out.indent():
            _plan_stage(out, pipeline)
            for step in layout(pipeline):
                if isinstance(step, Parallel):
                    _parallel(out, pipeline, step)
                elif step[0].matrix:
                    _matrix(out, pipeline, step)
                else:
                    _stage(out, pipeline, step[0])
        out.line("}")
        _pipeline_post(out, pipeline)
    out.line("}")
    return out.text()


_HEADER = """\
// Generated by `hilci jenkinsfile --write` from {definition}: edit the definition, not this file.
// Each stage runs `hilci stage NAME` in a pod from podtemplates/ (Jenkins's Kubernetes plugin), the same command
// `hilci run` runs locally. Checked by `hilci jenkinsfile --check`.
import groovy.transform.Field

// Which stages passed, by "stage" or "stage-board": a stage runs only when every stage it needs passed.
@Field Map<String, Boolean> passed = [:]

// Runs one hilci stage and maps pytest's exit codes: 0 passed, 1 a gate failed (UNSTABLE), 3 only the rig failed
// (infrastructure: the stage NOT_BUILT, the build UNSTABLE, never a code FAILURE), else an error.
// On a Jetson the rig device plugin hands the pod its rig YAML ($HILCI_RIG); elsewhere the repository's is used.
def hilciStage(String stage, int timeoutS, String board = '') {
    String args = board ? "${stage} --board ${board} --rig " + '"${HILCI_RIG:-' + rigFor(board) + '}"' : stage
    String key = board ? "${stage}-${board}".toString() : stage
    passed[key] = false
    Integer rc = null
    // A thrown error (the install step, the timeout firing, the pod lost) would make Declarative skip every later
    // stage, the report included: catchError fails this stage and the build instead, and the build goes on.
    catchError(buildResult: 'FAILURE', stageResult: 'FAILURE') {
        timeout(time: timeoutS, unit: 'SECONDS') {
            installProject()
            rc = sh(script: "hilci stage ${args}", returnStatus: true, label: "hilci stage ${args}")
        }
    }
    if (rc == 0) {
        passed[key] = true
    } else if (rc == 1) {
        unstable("hilci stage ${args}: a gate failed (exit 1)")
    } else if (rc == 3) {
        catchError(buildResult: 'UNSTABLE', stageResult: 'NOT_BUILT') {
            error("hilci stage ${args}: only infrastructure failed (exit 3): the rig, not the code; see the tests' hil.failure_class")
        }
    } else if (rc != null) {
        catchError(buildResult: 'FAILURE', stageResult: 'FAILURE') {
            error("hilci stage ${args}: the stage could not run (exit ${rc})")
        }
    }
}

// Whether a stage ran in this build (hilciStage was called), whatever its outcome.
def hasRun(String stage) {
    return passed.containsKey(stage)
}

// The checkout installed as a package when it is one (hilci's own repository, a project's Python package); a
// repository that is not one runs as it is: hilci imports the pipeline module from the checkout's root.
def installProject() {
    sh(script: '@INSTALL_STEP@', label: 'install the project')
}

// Whether a stage (on a board, for matrix stages) ran and passed in this build.
def hasPassed(String stage, String board = '') {
    return passed[board ? "${stage}-${board}".toString() : stage] == true
}

// Whether the BOARDS parameter selects a board: 'all' (the default), or a comma-separated list.
def boardSelected(String board) {
    String chosen = params.BOARDS ?: 'all'
    return chosen == 'all' || chosen.tokenize(', ').contains(board)
}

// A failed stage's pod is deleted like any other: what a post-mortem needs is archived instead.
def diagnostics(String key) {
    String file = "reports/diagnostics/${key}.txt"
    sh(script: 'mkdir -p reports/diagnostics && { date -u; uname -a; df -h .; ls -l /dev/serial/by-id /dev/video* ' +
               '"${HILCI_RIG:-/dev/null}"; cat "${HILCI_RIG:-/dev/null}"; } > ' + file + ' 2>&1 || true',
       label: 'diagnostics')
    archiveArtifacts artifacts: "${file},artifacts/**/*.log,reports/logs/**", allowEmptyArchive: true
}

// Unstashes what earlier pods handed on; a stash is missing only when its stage did not run.
def unstashAll(List<String> names) {
    for (String name : names) {
        try {
            unstash(name)
        } catch (err) {
            echo "no stash '${name}': ${err.message}"
        }
    }
}
"""


_PLAN_HEADER = """\
// Which stages the plan found passed in the store ("stage" or "stage-board"): never scheduled, counted as passed;
// the pods of later stages restore their outputs from the store (docs/store.md).
@Field Map<String, Boolean> cached = [:]

// The plan step, on a CPU pod before any GPU or Jetson is asked for: every stage's key against the store.
// A plan that throws fails the build but skips nothing: every stage then runs as a miss.
def hilciPlan() {
    String ids = ''
    catchError(buildResult: 'FAILURE', stageResult: 'FAILURE') {
        installProject()
        ids = sh(script: '@PLAN_STEP@', returnStdout: true,
                 label: 'hilci plan --json')
    }
    for (String id : ids.tokenize()) {  // stdout: the cached stages' ids, one a line; the plan is the JSON file
        cached[id] = true
        passed[id] = true
    }
}

// Whether the plan found a stage (on a board, for matrix stages) passed in the store.
def isCached(String stage, String board = '') {
    return cached[board ? "${stage}-${board}".toString() : stage] == true
}
"""
_ON_BOARD = """\
// One board's branch of a per-board group inside a parallel branch (Declarative allows no `matrix` there): the
// board's rig lock, then its Jetson pod (the same attempts as a stage's `retries`), its container and checkout,
// then the group's stages. An error thrown here (a pod that failed all its attempts, an agent lost while
// publishing) fails this board and the build, never another board, and the report still runs in its stage.
def onBoard(String board, Closure body) {
    catchError(buildResult: 'FAILURE', stageResult: 'FAILURE') {
        lock(resource: "rig-${board}") {
            podTemplate(yaml: readTrusted("@DIR@/jetson-${board}.yaml")) {
                retry(count: @RETRIES@, conditions: [kubernetesAgent(), nonresumable()]) {
                    node(POD_LABEL) {
                        container('@CONTAINER@') {
                            checkout scm
                            body()
                        }
                    }
                }
            }
        }
    }
}
"""
CELL = "board"  # the Groovy variable naming the board in a scripted per-board branch
PLAN_STAGE = "plan"
PLAN_STASH = "junit-plan"


def _plan_stage(out: _Writer, pipeline: Pipeline) -> None:
    """The first stage: `hilci plan` on the CPU pod; publishes the cached stages' JUnit ("cached from ...")."""
    out.line(f"stage({_q(PLAN_STAGE)}) {{")
    with out.indent():
        pod = plan_pod(pipeline)
        _kubernetes(out, _q(f"{pipeline.podtemplates_dir}/{pod}.yaml"), pod)
        out.line("steps {")
        with out.indent():
            out.line("hilciPlan()")
        out.line("}")
        out.line("post {")
        with out.indent():
            out.line("always {")
            with out.indent():
                out.line("archiveArtifacts artifacts: 'reports/plan.json', allowEmptyArchive: true")
                out.line("junit testResults: 'reports/junit/*.xml', allowEmptyResults: true, keepProperties: true")
                out.line(f"stash name: {_q(PLAN_STASH)}, includes: 'reports/junit/*.xml', allowEmpty: true")
            out.line("}")
        out.line("}")
    out.line("}")


def _pipeline_post(out: _Writer, pipeline: Pipeline) -> None:
    """The safety net: an error thrown outside hilciStage's catchError (a pod that still fails after its
    attempts, a post step on a lost agent) makes Declarative skip every later stage, so a gathering stage that did
    not run runs here, in a pod of its own template (scripted: a pipeline's `post` has no declarative agent)."""
    gathers = [s for s in pipeline.stages if s.gathers]
    if not gathers:
        return
    out.line("post {")
    with out.indent():
        out.line("always {")
        with out.indent():
            out.line("script {")
            with out.indent():
                for stage in gathers:
                    out.line(f"if (!hasRun({_q(stage.name)})) {{  // skipped after an earlier stage threw")
                    with out.indent():
                        _gather_in_post(out, pipeline, stage)
                    out.line("}")
            out.line("}")
        out.line("}")
    out.line("}")


def _gather_in_post(out: _Writer, pipeline: Pipeline, stage: Stage) -> None:
    """A gathering stage as scripted steps: its pod template, the same attempts, checkout, steps and publishing."""
    out.line(f"podTemplate(yaml: readTrusted({_q(f'{pipeline.podtemplates_dir}/{stage.pod}.yaml')})) {{")
    with out.indent():
        out.line(f"retry(count: {POD_RETRIES}, conditions: [kubernetesAgent(), nonresumable()]) {{")
        with out.indent():
            out.line("node(POD_LABEL) {")
            with out.indent():
                out.line(f"container({_q(CONTAINER)}) {{")
                with out.indent():
                    out.line("checkout scm")
                    _stage_body(out, pipeline, stage, set())
                    _publish(out, stage)
                out.line("}")
            out.line("}")
        out.line("}")
    out.line("}")


def plan_pod(pipeline: Pipeline) -> str:
    """The pod the plan step runs in: the first non-matrix stage's (a CPU pod, as no GPU or Jetson is asked for
    before the plan), else `cpu`; never a pod template the pipeline does not use otherwise."""
    return next((s.pod for s in pipeline.stages if not s.matrix), "cpu")


def _not_cached(stage: Stage, group: list[Stage] | None = None, board_var: str = f"env.{AXIS}") -> str:
    """The `when` check that skips what the plan found cached (a matrix cell: only when all its stages are)."""
    board = f", {board_var}" if stage.matrix else ""
    if group and len(group) > 1:
        return "!(" + " && ".join(f"isCached({_q(s.name)}{board})" for s in group) + ")"
    return f"!isCached({_q(stage.name)}{board})"


def _build_timeout_min(pipeline: Pipeline) -> int:
    """The whole build's limit: every stage's own limit in sequence, plus an hour for pods and queues."""
    total_s = sum(s.timeout_s for s in pipeline.stages)
    return int(total_s // 60) + BUILD_TIMEOUT_MIN_FLOOR


def groups(pipeline: Pipeline) -> list[list[Stage]]:
    """Stages in order, consecutive matrix stages grouped (they share one pod per board)."""
    groups: list[list[Stage]] = []
    for stage in pipeline.stages:
        if stage.matrix and groups and groups[-1][0].matrix:
            groups[-1].append(stage)
        else:
            groups.append([stage])
    return groups


@dataclass(frozen=True)
class Parallel:
    """Independent chains run side by side: one `parallel` branch each, made of units in sequence (a plain stage,
    or a group of consecutive matrix stages run per board), every stage in its own pod."""

    branches: tuple[tuple[tuple[Stage, ...], ...], ...]

    @property
    def name(self) -> str:
        return " | ".join(_branch_name(branch) for branch in self.branches)


def _branch_name(branch: tuple[tuple[Stage, ...], ...]) -> str:
    return ", ".join(s.name for unit in branch for s in unit)


def layout(pipeline: Pipeline) -> list[list[Stage] | Parallel]:
    """The top-level steps after the plan, following the stages' `needs`: a run of stages that falls apart into
    independent chains becomes one `parallel` stage (a branch per chain, its units in sequence); a gathering stage
    stays a top-level step after them all. A matrix group in a branch renders as a scripted per-board `parallel`
    (`_board_cells`); one at the top level, as a Declarative `matrix`."""
    steps: list[list[Stage] | Parallel] = []
    run: list[list[Stage]] = []
    for group in groups(pipeline):
        if group[0].gathers:
            steps += _chains(run)
            run = []
            steps.append(group)
        else:
            run.append(group)
    return steps + _chains(run)


def _chains(run: list[list[Stage]]) -> list[list[Stage] | Parallel]:
    """Units (a plain stage, a matrix group) in pipeline order, split into the chains no need joins (units in one
    chain stay in order)."""
    unit_of = {s.name: i for i, unit in enumerate(run) for s in unit}
    root = list(range(len(run)))  # union-find: each chain named by one of its units

    def top(i: int) -> int:
        while root[i] != i:
            i = root[i]
        return i

    for i, unit in enumerate(run):
        for stage in unit:
            for need in stage.needs:
                if need in unit_of:
                    root[top(i)] = top(unit_of[need])
    chains: dict[int, list[tuple[Stage, ...]]] = {}
    for i, unit in enumerate(run):
        chains.setdefault(top(i), []).append(tuple(unit))
    if len(chains) < 2:
        return [list(unit) for unit in run]
    return [Parallel(tuple(tuple(chain) for chain in chains.values()))]


def matrix_group_name(group: list[Stage]) -> str:
    """The outer stage's name of a matrix group, e.g. 'jetson: convert, hil'."""
    return "jetson: " + ", ".join(s.name for s in group)


def junit_file(stage: Stage, var: str = AXIS) -> str:
    """The JUnit path `hilci stage` writes (ci/stage/run.py: junit_path), as Groovy source (`var`: the variable
    holding the board, for matrix stages)."""
    return f'"reports/junit/{stage.name}-${{{var}}}.xml"' if stage.matrix else _q(f"reports/junit/{stage.name}.xml")


def junit_stashes(pipeline: Pipeline, stage: Stage) -> list[str]:
    """Names of the stashes holding a stage's JUnit file: one, or one per board for matrix stages."""
    if stage.matrix:
        return [f"junit-{stage.name}-{b.name}" for b in pipeline.boards]
    return [f"junit-{stage.name}"]


def output_stash(stage: Stage) -> str | None:
    """The stash handing a stage's outputs to later pods; matrix outputs (engines) stay on their device."""
    return None if (stage.matrix or not stage.outputs) else f"outputs-{stage.name}"


def _gates(stage: Stage, pipeline: Pipeline, skip: set[str] = frozenset(), group: list[Stage] | None = None,
           board_var: str = f"env.{AXIS}") -> list[str]:
    """The Groovy conditions for running `stage`: not cached and every needed stage passed (`board_var`: the
    board of a matrix stage's cell; `skip`: needs checked around it already)."""
    checks = []
    if stage.cacheable:
        checks.append(_not_cached(stage, group, board_var))
    for need in stage.needs:
        if need in skip:
            continue
        other = pipeline.stage(need)
        if other.matrix and stage.matrix:
            checks.append(f"hasPassed({_q(need)}, {board_var})")
        elif other.matrix:
            checks += [f"hasPassed({_q(need)}, {_q(b.name)})" for b in pipeline.boards]
        else:
            checks.append(f"hasPassed({_q(need)})")
    return checks


def _when(out: _Writer, stage: Stage, pipeline: Pipeline, skip: set[str] = frozenset(),
          matrix: bool = False, group: list[Stage] | None = None) -> None:
    """Run only when not cached and every needed stage passed (checked before a pod is asked for, and for the
    matrix before its rig lock, with the BOARDS parameter)."""
    checks = ([f"boardSelected(env.{AXIS})"] if matrix else []) + _gates(stage, pipeline, skip, group)
    if not checks:
        return
    out.line("when {")
    with out.indent():
        out.line("beforeAgent true")
        if matrix:
            out.line("beforeOptions true")
        out.line(f"expression {{ {' && '.join(checks)} }}")
    out.line("}")


def _kubernetes(out: _Writer, yaml_file: str, pod: str) -> None:
    out.line("agent {")
    with out.indent():
        out.line("kubernetes {")
        with out.indent():
            out.line(f"yamlFile {yaml_file}")
            out.line(f"defaultContainer {_q(CONTAINER)}")
            out.line(f"retries {POD_RETRIES}")
        out.line("}")
    out.line("}")


def _steps(out: _Writer, pipeline: Pipeline, stage: Stage, in_pod: set[str]) -> None:
    """Unstash what this pod lacks (`in_pod`: stashes already unstashed here), then run the stage."""
    out.line("steps {")
    with out.indent():
        _stage_body(out, pipeline, stage, in_pod)
    out.line("}")


def unstash_names(pipeline: Pipeline, stage: Stage, in_pod: set[str]) -> list[str]:
    """The stashes a stage unstashes before its steps, in order (`in_pod`: those already unstashed in its pod;
    updated): a gathering stage takes every JUnit and output stash, others the outputs of what they need."""
    if stage.gathers:
        others = [s for s in pipeline.stages if s is not stage]
        unstash = [PLAN_STASH] + [n for s in others for n in junit_stashes(pipeline, s)]
        unstash += [n for s in others if (n := output_stash(s))]
    else:
        unstash = [n for s in pipeline.needs_closure(stage) if (n := output_stash(s)) and n not in in_pod]
    in_pod.update(unstash)
    return unstash


def _stage_body(out: _Writer, pipeline: Pipeline, stage: Stage, in_pod: set[str],
                board_var: str = f"env.{AXIS}") -> None:
    """A stage's steps: unstash, then `hilciStage`."""
    unstash = unstash_names(pipeline, stage, in_pod)
    if unstash:
        out.line(f"unstashAll([{', '.join(_q(n) for n in unstash)}])")
    board = f", {board_var}" if stage.matrix else ""
    out.line(f"hilciStage({_q(stage.name)}, {int(stage.timeout_s)}{board})")


def _post(out: _Writer, stage: Stage) -> None:
    out.line("post {")
    with out.indent():
        out.line("always {")
        with out.indent():
            _publish(out, stage)
        out.line("}")
        out.line("unsuccessful {")
        with out.indent():
            key = f'"{stage.name}-${{{AXIS}}}"' if stage.matrix else _q(stage.name)
            out.line(f"diagnostics({key})")
        out.line("}")
    out.line("}")


def _publish(out: _Writer, stage: Stage, var: str = AXIS) -> None:
    """JUnit (allowed empty: a stage that failed before writing it must not throw here), archives, stashes."""
    out.line(f"junit testResults: {junit_file(stage, var)}, allowEmptyResults: true, keepProperties: true")
    if stage.archive:
        globs = ",".join(stage.archive)
        out.line(f"archiveArtifacts artifacts: {_q(globs)}, fingerprint: true, allowEmptyArchive: true")
    name = f'"junit-{stage.name}-${{{var}}}"' if stage.matrix else _q(f"junit-{stage.name}")
    if not stage.gathers:
        out.line(f"stash name: {name}, includes: {junit_file(stage, var)}, allowEmpty: true")
    stash = output_stash(stage)
    if stash:
        includes = ",".join(_dir_glob(o) for o in stage.outputs)
        out.line(f"stash name: {_q(stash)}, includes: {_q(includes)}, allowEmpty: true")


def _stage(out: _Writer, pipeline: Pipeline, stage: Stage) -> None:
    out.line(f"stage({_q(stage.name)}) {{")
    with out.indent():
        if not stage.gathers:
            _when(out, stage, pipeline)
        _kubernetes(out, _q(f"{pipeline.podtemplates_dir}/{stage.pod}.yaml"), stage.pod)
        _steps(out, pipeline, stage, set())
        _post(out, stage)
    out.line("}")


def _parallel(out: _Writer, pipeline: Pipeline, step: Parallel) -> None:
    """Branches side by side; one that fails (or throws) stops none of the others (no failFast)."""
    out.line(f"stage({_q(step.name)}) {{")
    with out.indent():
        out.line("parallel {")
        with out.indent():
            for branch in step.branches:
                if len(branch) == 1:
                    _unit(out, pipeline, branch[0])
                    continue
                out.line(f"stage({_q(_branch_name(branch))}) {{")
                with out.indent():
                    out.line("stages {")
                    with out.indent():
                        for unit in branch:
                            _unit(out, pipeline, unit)
                    out.line("}")
                out.line("}")
        out.line("}")
    out.line("}")


def _unit(out: _Writer, pipeline: Pipeline, unit: tuple[Stage, ...]) -> None:
    """A stage in a parallel branch, or a matrix group there: scripted, per board."""
    if unit[0].matrix:
        _board_cells(out, pipeline, list(unit))
    else:
        _stage(out, pipeline, unit[0])


def _board_cells(out: _Writer, pipeline: Pipeline, group: list[Stage]) -> None:
    """A matrix group inside a parallel branch: a stage whose `when` asks the group's plain needs, running a
    scripted `parallel` with one branch per board. A board runs when BOARDS selects it and the plan did not find
    all its stages cached (decided before its lock and pod), in `onBoard`; each stage of the group is a scripted
    stage named 'STAGE-BOARD' with the gates of its `when`, JUnit, archives and stashes in `finally`, and the
    diagnostics when it did not pass (`post { unsuccessful }`)."""
    names = {s.name for s in group}
    plain = {n for s in group for n in s.needs if n not in names and not pipeline.stage(n).matrix}
    title = matrix_group_name(group)
    out.line(f"stage({_q(title)}) {{")
    with out.indent():
        before = [f"hasPassed({_q(n)})" for n in sorted(plain, key=pipeline.names.index)]
        if before:
            out.line("when {")
            with out.indent():
                out.line(f"expression {{ {' && '.join(before)} }}")
            out.line("}")
        out.line("steps {")
        with out.indent():
            out.line("script {")
            with out.indent():
                out.line("Map cells = [:]")
                out.line(f"for (String b : [{', '.join(_q(b.name) for b in pipeline.boards)}]) {{")
                with out.indent():
                    out.line(f"String {CELL} = b  // each branch keeps its own board")
                    out.line(f"cells[{CELL}] = {{")
                    with out.indent():
                        cell = [f"boardSelected({CELL})"]
                        if group[0].cacheable:
                            cell.append(_not_cached(group[0], group, CELL))
                        out.line(f"if ({' && '.join(cell)}) {{")
                        with out.indent():
                            out.line(f"onBoard({CELL}) {{")
                            in_pod: set[str] = set()
                            with out.indent():
                                for stage in group:
                                    _cell_stage(out, pipeline, stage, plain, in_pod)
                            out.line("}")
                        out.line("} else {")
                        with out.indent():
                            out.line(f'echo "{title} on ${{{CELL}}}: skipped (not in BOARDS, or cached)"')
                        out.line("}")
                    out.line("}")
                out.line("}")
                out.line("parallel(cells)")
            out.line("}")
        out.line("}")
    out.line("}")


def _cell_stage(out: _Writer, pipeline: Pipeline, stage: Stage, skip: set[str], in_pod: set[str]) -> None:
    """One stage of a board's branch, as a scripted stage in that board's pod."""
    out.line(f'stage("{stage.name}-${{{CELL}}}") {{')
    with out.indent():
        gates = _gates(stage, pipeline, skip, board_var=CELL)
        if gates:
            out.line(f"if ({' && '.join(gates)}) {{")
            out._depth += 1
        out.line("try {")
        with out.indent():
            _stage_body(out, pipeline, stage, in_pod, board_var=CELL)
        out.line("} finally {")
        with out.indent():
            _publish(out, stage, CELL)
            out.line(f"if (!hasPassed({_q(stage.name)}, {CELL})) {{")
            with out.indent():
                out.line(f'diagnostics("{stage.name}-${{{CELL}}}")')
            out.line("}")
        out.line("}")
        if gates:
            out._depth -= 1
            out.line("} else {")
            with out.indent():
                out.line(f'echo "{stage.name} on ${{{CELL}}}: skipped (cached, or what it needs did not pass)"')
            out.line("}")
    out.line("}")


def _matrix(out: _Writer, pipeline: Pipeline, group: list[Stage]) -> None:
    names = {s.name for s in group}
    out.line(f"stage({_q(matrix_group_name(group))}) {{")
    with out.indent():
        out.line("matrix {")
        with out.indent():
            out.line("axes {")
            with out.indent():
                out.line("axis {")
                with out.indent():
                    out.line(f"name {_q(AXIS)}")
                    out.line("values " + ", ".join(_q(b.name) for b in pipeline.boards))
                out.line("}")
            out.line("}")
            _when(out, group[0], pipeline, matrix=True, group=group)
            _kubernetes(out, f'"{pipeline.podtemplates_dir}/jetson-${{{AXIS}}}.yaml"', "jetson")
            out.line("options {")
            with out.indent():
                out.line(f'lock(resource: "rig-${{{AXIS}}}")')
            out.line("}")
            out.line("stages {")
            in_pod: set[str] = set()
            with out.indent():
                for stage in group:
                    out.line(f"stage({_q(stage.name)}) {{")
                    with out.indent():
                        _when(out, stage, pipeline, skip=set(group[0].needs) - names)
                        _steps(out, pipeline, stage, in_pod)
                        _post(out, stage)
                    out.line("}")
            out.line("}")
        out.line("}")
    out.line("}")


def _dir_glob(path: str) -> str:
    """A declared output as a stash include: directories (no suffix) get '/**'."""
    path = path.rstrip("/")
    return path if ("*" in path or Path(path).suffix) else f"{path}/**"


def _q(text: str) -> str:
    """A Groovy single-quoted string literal (no interpolation)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Writer:
    """Indented lines, four spaces a level."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._depth = 0

    def line(self, text: str = "") -> None:
        self._lines.append(("    " * self._depth + text) if text else "")

    def lines(self, block: str) -> None:
        self._lines.extend(block.rstrip("\n").split("\n"))
        self._lines.append("")

    def indent(self) -> _Writer:
        return self

    def __enter__(self) -> _Writer:
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


# --- CLI -------------------------------------------------------------------------------------------------------

def register(subparsers) -> None:
    from hilci.pipeline.project import add_pipeline_option

    p = subparsers.add_parser("jenkinsfile", help="render the Jenkinsfile from the pipeline definition, or check it",
                              description="Print the Jenkinsfile rendered from the pipeline definition; --write "
                                          "replaces the committed file; --check verifies the committed file; "
                                          "--lint asks a Jenkins (JENKINS_URL) to validate it.")
    p.add_argument("--check", action="store_true",
                   help="check the committed Jenkinsfile: equal to the rendering, every stage present and "
                        "publishing JUnit, every pod template file present")
    p.add_argument("--lint", action="store_true",
                   help="post the Jenkinsfile to the configured Jenkins's declarative linter "
                        "(/pipeline-model-converter/validate) and print its verdict")
    p.add_argument("--write", action="store_true", help="write the rendering to ./Jenkinsfile")
    p.add_argument("--file", default=JENKINSFILE, help="the Jenkinsfile to check or write (default: %(default)s)")
    add_pipeline_option(p)
    p.set_defaults(func=_cmd_jenkinsfile)


def _cmd_jenkinsfile(args) -> int:
    from hilci.errors import UsageError
    from hilci.jenkins.check import JenkinsfileError, check
    from hilci.pipeline.project import project_from_args

    project = project_from_args(args, data_on_stdout=not (args.write or args.check or args.lint))
    pipeline, root = project.pipeline, project.root
    pipeline.validate(root)
    text = render(pipeline, project.spec, definition_file(project.spec, root))
    path = root / args.file
    if args.write:
        path.write_text(text)
        print(f"wrote {args.file}")
    if (args.check or args.lint) and not path.is_file():
        raise UsageError(f"{args.file}: no such file (render it with `hilci jenkinsfile --write`)")
    if args.check:
        committed = path.read_text()
        try:
            check(committed, pipeline, root, filename=args.file)
        except JenkinsfileError as exc:
            print(f"{exc}", file=sys.stderr)
            return 1
        if committed != text:
            diff = difflib.unified_diff(committed.splitlines(), text.splitlines(),
                                        f"{args.file} (committed)", f"{args.file} (rendered)", lineterm="", n=1)
            print(f"{args.file}: differs from the rendering of the pipeline definition; "
                  "run `hilci jenkinsfile --write`:", file=sys.stderr)
            print("\n".join(list(diff)[:60]), file=sys.stderr)
            return 1
        print(f"{args.file}: ok ({len(pipeline.stages)} stages, {len(pipeline.boards)} boards)")
    if args.lint:
        return _lint(path, args.file)
    if not args.write and not args.check:
        sys.stdout.write(text)
    return 0


def definition_file(spec: str, root: Path) -> str:
    """The file defining `module:attr`, relative to the project when it lives there (else the module's name).
    The module may have been imported from another copy of the project (an editable install of one checkout, run
    in a clone of it): its path below the folder holding its top package names the same file here, so the
    rendering does not depend on which copy Python imported."""
    name = spec.partition(":")[0]
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    if not file:
        return name
    path, root = Path(file).resolve(), root.resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        pass
    top = sys.modules.get(name.partition(".")[0])
    top_file = getattr(top, "__file__", None)
    if top_file:
        base = Path(top_file).resolve().parent
        base = base.parent if Path(top_file).name == "__init__.py" else base  # a package: the folder above it
        try:
            rel = path.relative_to(base)
        except ValueError:
            rel = None
        if rel is not None and (root / rel).is_file():
            return rel.as_posix()
    return name


def _lint(path: Path, shown: str) -> int:
    """Jenkins's verdict on the file: 0 when it validated it, 1 with its errors, 2 when Jenkins cannot be asked."""
    from hilci.jenkins.client import JenkinsClient, JenkinsError, load_credentials
    from hilci.util.redact import scrub_urls

    try:
        client = JenkinsClient(load_credentials())
        ok, answer = client.validate_jenkinsfile(path.read_text())
    except JenkinsError as exc:
        print(f"hilci: error: {shown}: cannot lint: {scrub_urls(str(exc))}", file=sys.stderr)
        return 2
    print(f"{shown}: {answer}" if ok else f"{shown}: Jenkins's linter refused it:\n{answer}",
          file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1
