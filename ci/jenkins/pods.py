"""`hilci pods` (`make pods`): the Jenkinsfile's stages, each in its own pod template's container, on this machine.

What a Jenkins build with the Kubernetes plugin does, with podman instead of a cluster (DESIGN.md "Containers on
this machine"):
- each pod is the template itself (podtemplates/*.yaml) given to `podman kube play --network host`: its `hilci`
  container with the template's securityContext, env, envFrom (the store Secret, a podman secret holding the
  keys) and volumes; the `jnlp` container is left out, and the plugin's workspace volume is a host folder
  mounted at /home/jenkins/agent holding a fresh copy of the checkout, owned by the pods' uid 1000;
- a Jetson template's rig (the device plugin's devices and $HILCI_RIG) is replaced by the emulated rig:
  $HILCI_RIG names hil_tests/rigs/sim.yaml, whose emulators the hil stage starts inside the container on ptys;
  its GPU and rig resources, runtimeClassName and node fields, which only a cluster reads, are dropped;
- the steps are the Jenkinsfile's own (hilci.jenkins.jenkinsfile: plan_steps, stage_steps), run with `podman
  exec` in the pod, in the Jenkinsfile's shape and under its `when` rules: plan first, then its `parallel`
  branches side by side (a branch's stages in order), one Jetson pod per board for its matrix stages (the boards
  side by side, as the scripted `parallel` or the `matrix` runs them), the gathering stage (report) last and
  always; at most `--jobs` pods at once (default: one per CPU), where a cluster would run them all;
  a stage runs only when what it needs passed and the plan did not find it cached;
- stash/unstash and junit/archiveArtifacts are copies: the stashes the Jenkinsfile names, and what each stage
  publishes and archives gathered into the output folder (default reports/pods/) at its workspace path, as a
  build's archive holds it: reports/junit.xml and reports/index.html from the report stage;
- the stage cache is a SeaweedFS store started here for the run, shared by all its pods on 127.0.0.1.

Before any pod starts, each image runs `hilci doctor` on its stages (after the Jenkinsfile's install step): a
tool missing from an image is named with the image, exit 2. Exit 0 when every stage passed or was cached, 1 when
one failed (the report still runs), 2 for bad input.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hilci.errors import UsageError
from hilci.jenkins.jenkinsfile import (
    CONTAINER,
    PLAN_STAGE,
    PLAN_STASH,
    Parallel,
    build_environment,
    groups,
    junit_stashes,
    layout,
    output_stash,
    plan_pod,
    plan_steps,
    stage_steps,
    unstash_names,
)
from hilci.jenkins.podman import Podman
from hilci.pipeline.model import Pipeline, Stage

AGENT = "/home/jenkins/agent"  # the Kubernetes plugin's workspace volume, the pods' $HOME
JOB = "hilci"  # the workspace is <agent>/workspace/<job>, as the plugin names it
WORKSPACE = f"{AGENT}/workspace/{JOB}"
SIM_RIG = "hil_tests/rigs/sim.yaml"
POD_UID = 1000  # runAsUser of every template: the workspace belongs to it
STORE_SECRET = "hilci-store"
STORE_PREFIX = "s3://hilci/ci"
CLUSTER_ONLY_RESOURCES = ("nvidia.com/gpu", "hilci.dev/rig", "ephemeral-storage")
START_TIMEOUT_S = 180.0
PREFLIGHT_TIMEOUT_S = 300.0


@dataclass
class StageResult:
    """One stage as Jenkins would show it: passed, unstable (a gate, exit 1), failed, cached or skipped."""

    id: str  # "stage" or "stage-board"
    status: str
    seconds: float = 0.0
    pod: str = ""
    message: str = ""


@dataclass
class Pod:
    """One agent pod: a template, the stages run in it in order, and the board of a matrix cell."""

    template: str  # podtemplates/<name>.yaml, relative to the root
    stages: list[Stage]
    board: str | None = None
    name: str = ""

    @property
    def id(self) -> str:
        if not self.stages:
            return PLAN_STAGE
        return self.stages[0].name if not self.board else f"{'-'.join(s.name for s in self.stages)}-{self.board}"


@dataclass
class Run:
    """The state a build carries between pods: which stages passed or were cached, the stashes, the results."""

    root: Path
    pipeline: Pipeline
    out: Path
    work: Path
    podman: Podman
    run_id: str
    secret: str | None  # the podman secret standing for the store Secret (None: no Secret)
    boards: list[str]
    only: set[str] | None
    environment: dict[str, str] = field(default_factory=dict)  # the Jenkinsfile's `environment`
    images: dict[str, str] = field(default_factory=dict)  # tag -> the image id preflight checked: the pods run it
    log: object = print
    passed: dict[str, bool] = field(default_factory=dict)
    cached: set[str] = field(default_factory=set)
    results: list[StageResult] = field(default_factory=list)

    @property
    def stashes(self) -> Path:
        return self.work / "stashes"


def key(stage: Stage, board: str | None) -> str:
    return f"{stage.name}-{board}" if board else stage.name


def schedule(pipeline: Pipeline, boards: list[str]) -> list[Pod]:
    """The pods of a build, in the Jenkinsfile's order: a matrix group is one pod per board."""
    pods = [Pod(f"{pipeline.podtemplates_dir}/{plan_pod(pipeline)}.yaml", [], None)]  # the plan's
    for group in groups(pipeline):
        if group[0].matrix:
            pods += [Pod(f"{pipeline.podtemplates_dir}/jetson-{b}.yaml", list(group), b) for b in boards]
        else:
            pods.append(Pod(f"{pipeline.podtemplates_dir}/{group[0].pod}.yaml", list(group)))
    return pods


@dataclass
class SideBySide:
    """Pods that run at the same time: a `parallel` stage's branches, or a matrix's cells (a branch per board).
    Each branch is a list of steps (a Pod, or another SideBySide) run in order."""

    branches: list[list]


def graph(pipeline: Pipeline, boards: list[str]) -> list:
    """The build's steps after the plan, in the Jenkinsfile's shape (hilci.jenkins.jenkinsfile.layout)."""

    def unit(stages: list[Stage] | tuple[Stage, ...]):
        if stages[0].matrix:
            return SideBySide([[Pod(f"{pipeline.podtemplates_dir}/jetson-{b}.yaml", list(stages), b)]
                               for b in boards])
        return Pod(f"{pipeline.podtemplates_dir}/{stages[0].pod}.yaml", list(stages))

    return [SideBySide([[unit(u) for u in branch] for branch in step.branches]) if isinstance(step, Parallel)
            else unit(step) for step in layout(pipeline)]


class PodRunner:
    """Runs the graph's steps: branches in threads, at most `jobs` pods at once; an error in one branch is raised
    once every branch has ended (as Jenkins's `parallel` does, failFast off)."""

    def __init__(self, run: Run, jobs: int, first_index: int = 1):
        self.run = run
        self.slots = threading.BoundedSemaphore(max(1, jobs))
        self.index = first_index
        self.lock = threading.Lock()

    def steps(self, steps: list) -> None:
        for step in steps:
            if isinstance(step, Pod):
                with self.lock:
                    index, self.index = self.index, self.index + 1
                with self.slots:
                    run_pod(self.run, step, index)
            else:
                self.side_by_side(step)

    def side_by_side(self, step: SideBySide) -> None:
        errors: list[BaseException] = []

        def branch(steps: list) -> None:
            try:
                self.steps(steps)
            except BaseException as exc:  # noqa: BLE001 - raised again below, once the other branches ended
                errors.append(exc)

        threads = [threading.Thread(target=branch, args=(b,), daemon=True) for b in step.branches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]


# --- The checkout as the plugin's workspace ---------------------------------------------------------------------

_CHECKOUT = threading.Lock()  # pods started side by side clone the checkout one at a time


def workspace_copy(root: Path, agent: Path) -> Path:
    """<agent>/workspace/<job>: a shallow clone of the checkout's commit with its uncommitted changes on top (as
    `checkout scm` of that change would give), owned by the pods' user."""
    ws = agent / "workspace" / JOB
    ws.parent.mkdir(parents=True)
    with _CHECKOUT:
        checkout_copy(root, ws)
    _own(agent)
    return ws


def checkout_copy(root: Path, ws: Path) -> Path:
    """A shallow clone of the checkout at `ws`, with the working tree's changes (modified, new, deleted) on top."""
    _git(root, "clone", "--quiet", "--depth", "1", "--no-local", f"file://{root}", str(ws))
    changed = _git(root, "ls-files", "-z", "--modified", "--others", "--exclude-standard").split("\0")
    for rel in filter(None, changed):
        src = root / rel
        if src.is_file() or src.is_symlink():
            (ws / rel).parent.mkdir(parents=True, exist_ok=True)
            if (ws / rel).is_symlink() or (ws / rel).exists():
                (ws / rel).unlink()
            shutil.copy2(src, ws / rel, follow_symlinks=False)
    for rel in filter(None, _git(root, "ls-files", "-z", "--deleted").split("\0")):
        (ws / rel).unlink(missing_ok=True)
    return ws


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise UsageError(f"git {args[0]} in {root} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _own(path: Path) -> None:
    """chown -R to the pods' user (as root; rootless podman maps it with `podman unshare`)."""
    cmd = ["chown", "-R", f"{POD_UID}:{POD_UID}", str(path)]
    if os.geteuid() != 0:
        cmd = ["podman", "unshare", *cmd]
    subprocess.run(cmd, check=True, timeout=300, capture_output=True)


# --- A pod template as podman runs it ----------------------------------------------------------------------------

def load_template(root: Path, template: str) -> dict:
    path = root / template
    if not path.is_file():
        raise UsageError(f"{template}: no such pod template")
    data = yaml.safe_load(path.read_text())
    containers = ((data or {}).get("spec") or {}).get("containers") or []
    if not any(c.get("name") == CONTAINER for c in containers):
        raise UsageError(f"{template}: spec.containers has no '{CONTAINER}' container (the one the stages run in)")
    return data


def template_image(root: Path, template: str) -> str:
    return next(c for c in load_template(root, template)["spec"]["containers"] if c["name"] == CONTAINER)["image"]


def pod_spec(template: dict, name: str, agent: Path, secret: str | None, board: str | None) -> dict:
    """The Pod that `podman kube play` runs for a template: its hilci container alone, the workspace volume at
    the agent folder, the store Secret's name mapped to this run's podman secret; a Jetson's rig emulated."""
    pod = json.loads(json.dumps(template))  # a deep copy
    spec = pod["spec"]
    pod["metadata"] = {"name": name, "labels": (pod.get("metadata") or {}).get("labels") or {}}
    for cluster_only in ("runtimeClassName", "nodeSelector", "tolerations", "affinity", "serviceAccountName"):
        spec.pop(cluster_only, None)
    spec["restartPolicy"] = "Never"
    container = next(c for c in spec["containers"] if c["name"] == CONTAINER)
    spec["containers"] = [container]
    for kind in ("requests", "limits"):
        res = (container.get("resources") or {}).get(kind) or {}
        for r in CLUSTER_ONLY_RESOURCES:
            res.pop(r, None)
    for ref in container.get("envFrom") or []:
        if "secretRef" in ref and ref["secretRef"].get("name") == STORE_SECRET:
            ref["secretRef"]["name"] = secret or f"{STORE_SECRET}-absent-{name}"
    env = []
    for var in container.get("env") or []:
        source = (var.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
        if source == "spec.nodeName":  # the node is this machine
            var = {"name": var["name"], "value": os.uname().nodename}
        env.append(var)
    if board is not None:  # the device plugin would hand the pod its rig YAML here: the emulated rig instead
        env.append({"name": "HILCI_RIG", "value": SIM_RIG})
    container["env"] = env
    container["workingDir"] = WORKSPACE
    container.setdefault("volumeMounts", []).append({"name": "hilci-agent-workspace", "mountPath": AGENT})
    spec.setdefault("volumes", []).append({"name": "hilci-agent-workspace",
                                           "hostPath": {"path": str(agent), "type": "Directory"}})
    return pod


# --- Steps ---------------------------------------------------------------------------------------------------------

def exec_step(run: Run, container: str, script: str, timeout_s: float, log: Path) -> tuple[int, str]:
    """One `sh` step in the pod's container (in the workspace, with the container's environment)."""
    with open(log, "a") as fh:
        fh.write(f"+ {script}\n")
    env = [f"--env={k}={v}" for k, v in run.environment.items()]
    result = run.podman.run("exec", "-w", WORKSPACE, *env, container, "sh", "-c", script, timeout_s=timeout_s,
                            log=log)
    return result.rc, result.output


def stash(run: Run, ws: Path, name: str, includes: list[str]) -> None:
    """Copy what a stash includes (workspace-relative files and folders) into the run's stash folder."""
    dest = run.stashes / name
    dest.mkdir(parents=True, exist_ok=True)
    for inc in includes:
        for src in ws.glob(inc):
            target = dest / src.relative_to(ws)
            if src.is_dir():
                shutil.copytree(src, target, dirs_exist_ok=True, symlinks=True)
            elif src.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)


def unstash(run: Run, ws: Path, names: list[str], log: Path) -> None:
    for name in names:
        src = run.stashes / name
        if not src.is_dir():
            with open(log, "a") as fh:
                fh.write(f"no stash '{name}': its stage did not run\n")
            continue
        shutil.copytree(src, ws, dirs_exist_ok=True, symlinks=True)
    _own(ws)


def archive(ws: Path, out: Path, patterns: list[str]) -> None:
    """What the build keeps from a pod (the stage's `junit` and `archiveArtifacts` globs, and on failure the
    diagnostics' logs), copied into `out` at their workspace paths, as a build's archive holds them."""
    for pattern in patterns:
        # Jenkins's (Ant's) `dir/**` means every file below dir; pathlib's glob of `dir/**` yields only folders
        for src in ws.glob(pattern + "/*" if pattern.endswith("**") else pattern):
            if src.is_file():
                target = out / src.relative_to(ws)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)


DIAGNOSTICS = ["artifacts/**/*.log", "reports/logs/**/*"]  # what the Jenkinsfile's diagnostics() archives


def should_run(run: Run, stage: Stage, board: str | None, ahead: frozenset[str] = frozenset()) -> tuple[bool, str]:
    """The Jenkinsfile's `when`: not cached, and every stage it needs passed (`--only` skips the rest). `ahead`:
    stages of the same pod that run before this one, taken as passing (the pod starts on that assumption; each
    stage's own `when` is asked again at its turn, after them, as Declarative asks it)."""
    if run.only is not None and stage.name not in run.only:
        return False, "not in --only"
    if stage.gathers:
        return True, ""
    if stage.cacheable and key(stage, board) in run.cached:
        return False, "cached"
    for need in stage.needs:
        other = run.pipeline.stage(need)
        if (run.only is not None and need not in run.only) or need in ahead:
            continue
        wanted = [key(other, board)] if (other.matrix and stage.matrix) else \
            [key(other, b) for b in run.boards] if other.matrix else [need]
        if not all(run.passed.get(k) for k in wanted):
            return False, f"{need} did not pass"
    return True, ""


def run_pod(run: Run, pod: Pod, index: int) -> None:
    """Start one pod, run its stages' steps in order, archive and stash, and delete the pod."""
    pod.name = f"hilci-pods-{run.run_id}-{index:02d}-{pod.id}".lower()[:60].rstrip("-")
    plan = not pod.stages
    # The pod's own `when` (the matrix cell's): it starts when one of its stages may run, counting the stages
    # before it in this pod as passing; a stage that needs one of them is asked again once that one ran.
    starts = plan or any(should_run(run, s, pod.board, frozenset(e.name for e in pod.stages[:i]))[0]
                         for i, s in enumerate(pod.stages))
    if not starts:
        for stage in pod.stages:
            _not_run(run, pod, stage)
        return
    logs = run.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{pod.id}.log"
    agent = run.work / "pods" / pod.name
    ws = workspace_copy(run.root, agent)
    spec = pod_spec(load_template(run.root, pod.template), pod.name, agent, run.secret, pod.board)
    container_spec = next(c for c in spec["spec"]["containers"] if c["name"] == CONTAINER)
    # The image preflight checked, by id: a tag rebuilt meanwhile (podman's storage is the machine's) cannot
    # slip another image into this build.
    container_spec["image"] = run.images.get(container_spec["image"], container_spec["image"])
    spec_file = run.work / f"{pod.name}.yaml"
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    t0 = time.monotonic()
    started = run.podman.run("kube", "play", "--network", "host", str(spec_file), timeout_s=START_TIMEOUT_S, log=log)
    container = f"{pod.name}-{CONTAINER}"
    error = "" if started.rc == 0 else _tail(started.output)
    if not error:
        state = run.podman.run("inspect", "--format", "{{.State.Status}} {{.State.Error}}", container, timeout_s=30)
        if state.rc != 0 or not state.output.startswith("running"):
            logs_out = run.podman.run("logs", container, timeout_s=30).output
            error = f"the container is not running ({state.output.strip()}): {_tail(logs_out)}"
    try:
        if plan:
            _run_plan(run, pod, container, ws, log, error, t0)
            return
        in_pod: set[str] = set()
        for stage in pod.stages:
            if should_run(run, stage, pod.board)[0]:
                _run_stage(run, pod, stage, container, ws, log, error, in_pod)
            else:
                _not_run(run, pod, stage)
    finally:
        run.podman.run("kube", "down", str(spec_file), timeout_s=120, log=log)


def _run_plan(run: Run, pod: Pod, container: str, ws: Path, log: Path, error: str, t0: float) -> None:
    status, message = "passed", ""
    if error:
        status, message = "failed", f"the pod did not start: {error}"
    else:
        for script in plan_steps():
            rc, output = exec_step(run, container, script, 600, log)
            if rc != 0:
                status, message = "failed", f"{script}: exit {rc}: {_tail(output)}"
                break
            if script == plan_steps()[-1]:
                ids = output.split()
                run.cached.update(ids)
                for i in ids:
                    run.passed[i] = True
    stash(run, ws, PLAN_STASH, ["reports/junit/*.xml"])
    archive(ws, run.out, ["reports/plan.json", "reports/junit/*.xml"])
    run.results.append(StageResult(PLAN_STAGE, status, time.monotonic() - t0, pod.template, message))


def _not_run(run: Run, pod: Pod, stage: Stage) -> None:
    """A stage its `when` skips: cached (the plan found it) or skipped, with the reason."""
    _, why = should_run(run, stage, pod.board)
    status = "cached" if why == "cached" else "skipped"
    run.results.append(StageResult(key(stage, pod.board), status, pod=pod.template, message=why))


def _run_stage(run: Run, pod: Pod, stage: Stage, container: str, ws: Path, log: Path, error: str,
               in_pod: set[str]) -> None:
    """hilciStage: the steps under the stage's time limit; exit 0 passed, 1 unstable, above 1 (or a step that
    could not run) failed; then junit/archive/stash as the stage's post does, whatever happened."""
    k = key(stage, pod.board)
    run.passed[k] = False
    t0 = time.monotonic()
    run.log(f"pods: {k}: running in {pod.template}")
    unstash(run, ws, unstash_names(run.pipeline, stage, in_pod), log)
    if error:
        status, message = "failed", f"the pod's container did not start: {error}"
    else:
        status, message = "passed", ""
        deadline = t0 + stage.timeout_s
        for script in stage_steps(run.pipeline, stage, pod.board):
            left = deadline - time.monotonic()
            rc, output = exec_step(run, container, script, max(left, 1.0), log)
            if rc == 0:
                continue
            if script.startswith("hilci stage") and rc == 1:
                status, message = "unstable", f"{script}: a gate failed (exit 1)"
            else:
                status, message = "failed", f"{script}: exit {rc}: {_tail(output)}"
            break
    run.passed[k] = status == "passed"
    junit_file = ws / "reports" / "junit" / f"{k}.xml"
    if status != "passed" and junit_file.exists():  # which tests, as Jenkins's test report would list them
        message += failed_cases(junit_file)
    if status == "failed" and not junit_file.exists():  # what Jenkins's stage view shows, for the report to show
        from hilci.results.junit import make_case, write_suite

        write_suite(junit_file, f"hilci.{k}.pod", [make_case(f"{k} in its pod", f"hilci.pods.{stage.name}",
                                                             error=message[:300], details=message)])
    junit = f"reports/junit/{k}.xml"
    archive(ws, run.out, [junit, *stage.archive] + (DIAGNOSTICS if status != "passed" else []))
    if not stage.gathers:
        names = junit_stashes(run.pipeline, stage)
        board_index = [b.name for b in run.pipeline.boards].index(pod.board) if pod.board else 0
        stash(run, ws, names[board_index], [junit])
    name = output_stash(stage)
    if name:
        stash(run, ws, name, list(stage.outputs))
    seconds = time.monotonic() - t0
    run.results.append(StageResult(k, status, seconds, pod.template, message))
    run.log(f"pods: {k}: {status} in {seconds:.0f} s" + (f": {message}" if message else ""))


def failed_cases(junit_file: Path, most: int = 5) -> str:
    """'; failed: a (message), b (message)' for a JUnit file's failed or erroring testcases ('' when none)."""
    from hilci.results.junit import ERROR, FAILED, read_cases

    try:
        bad = [c for c in read_cases(junit_file) if c.status in (FAILED, ERROR)]
    except Exception:  # an unreadable file: the stage's own message stands
        return ""
    if not bad:
        return ""
    names = [f"{c.classname}::{c.name} ({c.message.strip()[:160]})" for c in bad[:most]]
    return "; failed: " + ", ".join(names) + (f" and {len(bad) - most} more" if len(bad) > most else "")


def _tail(text: str, n: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= n else "..." + text[-n:]


# --- Before any pod: the images and their tools ----------------------------------------------------------------

def preflight(run: Run, pods: list[Pod]) -> list[str]:
    """Each image the build's pods run: built, and holding what its stages need (`hilci doctor` inside it, as
    the image's own user, after the Jenkinsfile's install step). One line per problem, naming the image."""
    problems: list[str] = []
    by_image: dict[str, tuple[str, list[str], bool]] = {}
    for pod in pods:
        image = template_image(run.root, pod.template)
        names = [s.name for s in pod.stages if run.only is None or s.name in run.only]
        template, stages, rigged = by_image.get(image, (pod.template, [], False))
        by_image[image] = (template, stages + [n for n in names if n not in stages], rigged or pod.board is not None)
    for image, (template, stages, rigged) in by_image.items():
        found = run.podman.run("image", "inspect", "--format", "{{.Id}}", image, timeout_s=60)
        if found.rc != 0:
            problems.append(f"image {image} ({template}) is not built here: make images")
            continue
        run.images[image] = found.output.strip()
        if not stages:
            continue
        agent = run.work / "preflight" / image.replace("/", "_").replace(":", "_")
        workspace_copy(run.root, agent)
        doctor = f"hilci doctor --only {','.join(stages)}" + (f" --rig {SIM_RIG}" if rigged else "")
        script = f"{plan_steps()[0]} && {doctor}"
        env = [f"--env={k}={v}" for k, v in {"HOME": AGENT, **run.environment}.items()]
        result = run.podman.run("run", "--rm", "--network", "host", "-v", f"{agent}:{AGENT}", "-w", WORKSPACE,
                                *env, image, "sh", "-c", script, timeout_s=PREFLIGHT_TIMEOUT_S)
        if result.rc == 0:
            continue
        lines = [ln.removeprefix("hilci: ") for ln in result.output.splitlines() if " is missing (needed by " in ln]
        if lines:
            problems += [f"image {image} ({template}): {ln}" for ln in lines]
        else:
            problems.append(f"image {image} ({template}): `{script}` failed (exit {result.rc}): "
                            f"{_tail(result.output, 800)}")
    return problems


# --- The store ---------------------------------------------------------------------------------------------------

def create_secret(podman: Podman, name: str, data: dict[str, str], folder: Path) -> None:
    """A podman secret as `envFrom.secretRef` reads it in podman 4.3: a JSON map of key -> base64 value (a
    Kubernetes Secret YAML given to kube play comes out with empty keys). The file is removed at once."""
    path = folder / f"{name}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({k: base64.b64encode(v.encode()).decode() for k, v in data.items()}, fh)
    try:
        result = podman.run("secret", "create", name, str(path), timeout_s=30)
    finally:
        path.unlink(missing_ok=True)
    if result.rc != 0:
        raise UsageError(f"podman secret create {name} failed: {_tail(result.output, 500)}")


def store_secret_data(endpoint: str, access_key: str, secret_key: str) -> dict[str, str]:
    """The keys of the store Secret (docs/store.md), for the shared SeaweedFS store."""
    return {"HILCI_STORE": STORE_PREFIX, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key}


# --- The whole build -------------------------------------------------------------------------------------------

def run_pods(root: Path, pipeline: Pipeline, out: Path, boards: list[str] | None = None,
             only: set[str] | None = None, secret: str = "seaweed", secret_data: dict[str, str] | None = None,
             spec: str = "", log=print, jobs: int | None = None) -> int:
    """Run the build in pods; `secret`: 'seaweed' (a store started here, its keys in the Secret), 'missing' (no
    Secret, as in a namespace without it) or 'given' (`secret_data` as the Secret's keys, right or wrong)."""
    from hilci.store import seaweed

    all_boards = [b.name for b in pipeline.boards]
    boards = boards or all_boards
    unknown = sorted(set(boards) - set(all_boards))
    if unknown:
        raise UsageError(f"--boards: no board {', '.join(unknown)} (the pipeline's: {', '.join(all_boards)})")
    if only is not None:
        for name in only:
            pipeline.stage(name)  # UsageError/KeyError for an unknown stage
    jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    if jobs < 1:
        raise UsageError(f"--jobs {jobs}: at least 1 pod at a time")
    podman = Podman(root)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="hilci-pods-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        run = Run(root, pipeline, out, work, podman, run_id, None, boards, only,
                  environment=build_environment(spec), log=log)
        pods = schedule(pipeline, boards)
        problems = preflight(run, pods)
        for line in problems:
            print(f"pods: {line}", file=sys.stderr)
        if problems:
            return 2
        server = None
        try:
            if secret == "seaweed":
                server = seaweed.start(work / "store")
                secret_data = store_secret_data(server.endpoint, seaweed.ACCESS_KEY, seaweed.SECRET_KEY)
            if secret != "missing":
                run.secret = f"{STORE_SECRET}-{run_id}"
                create_secret(podman, run.secret, secret_data or {}, work)
            else:
                log(f"pods: no store Secret '{STORE_SECRET}' (as in a namespace without it): stages run as misses")
            run_pod(run, pods[0], 0)  # the plan, before anything else
            PodRunner(run, jobs).steps(graph(pipeline, boards))
        finally:
            if run.secret:
                podman.run("secret", "rm", run.secret, timeout_s=30)
            if server is not None:
                server.stop()
    summary = [r.__dict__ for r in run.results]
    (out / "pods.json").write_text(json.dumps({"run": run_id, "stages": summary}, indent=2) + "\n")
    for r in run.results:
        log(f"pods: {r.id:<16} {r.status:<8} {r.seconds:6.0f} s  {r.pod}" + (f"  ({r.message[:200]})"
                                                                             if r.message else ""))
    bad = [r for r in run.results if r.status in ("failed", "unstable")]
    log(f"pods: {'FAILURE' if bad else 'SUCCESS'}: JUnit and report in {out}")
    return 1 if bad else 0


# --- CLI ---------------------------------------------------------------------------------------------------------

def register(subparsers) -> None:
    from hilci.pipeline.project import add_pipeline_option

    p = subparsers.add_parser("pods", help="run the Jenkinsfile's stages in their pod templates here, with podman",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--boards", default="all", help="Jetson boards (the BOARDS parameter): all, or a comma list")
    p.add_argument("--only", action="append", default=[], metavar="STAGE",
                   help="run only these stages (and the report, when named); the plan always runs")
    p.add_argument("--output", default="reports/pods", help="where the archive goes (default: %(default)s)")
    p.add_argument("--jobs", "-j", type=int, default=None,
                   help="pods running at once (default: one per CPU); the branches follow the Jenkinsfile's")
    p.add_argument("--store-secret", default="seaweed", metavar="MODE|FILE",
                   help="seaweed (default: a SeaweedFS store started here), missing (no Secret), or a JSON file "
                        "of the Secret's keys")
    add_pipeline_option(p)
    p.set_defaults(func=cmd_pods)


def cmd_pods(args) -> int:
    from hilci.pipeline.project import parse_only, project_from_args

    project = project_from_args(args)
    pipeline, root = project.pipeline, project.root
    boards = None if args.boards == "all" else [b.strip() for b in args.boards.split(",") if b.strip()]
    only = set(parse_only(args.only)) if args.only else None
    secret, data = args.store_secret, None
    if secret not in ("seaweed", "missing"):
        path = Path(secret)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--store-secret {path}: not a JSON map of the Secret's keys: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise UsageError(f"--store-secret {path}: not a JSON map of key -> string")
        secret = "given"
    out = Path(args.output)
    return run_pods(root, pipeline, out if out.is_absolute() else root / out, boards, only, secret, data,
                    project.spec, jobs=args.jobs)
