"""The pipeline definition as plain data for the DAG: one task per stage (per board for matrix stages).

No Airflow here: the DAG file holds what this returns, so a change of the definition shows as a diff of data.
Each task runs `hilci stage NAME` (matrix: `--board B --rig "${HILCI_RIG:-RIG}"`), the command the Jenkins
stage runs, in the pod of its template from podtemplates/ without the Jenkins agent container (`jnlp`): the
KubernetesPodOperator merges containers by position, so the `hilci` container must come first.
"""

from __future__ import annotations

import copy
from pathlib import Path

from hilci.errors import DefinitionError
from hilci.pipeline.model import Pipeline, Stage
from hilci.pipeline.sections import SoakSettings, parse_duration
from hilci.pipeline.soakschedule import without_h
from hilci.util.yamlfile import load_yaml

CONTAINER = "hilci"  # the container that runs `hilci stage` in every pod template (base_container_name)
AGENT_CONTAINER = "jnlp"  # Jenkins's agent: not in an Airflow pod
STORE_SECRET = "hilci-store"  # docs/store.md: the Secret every pod template's envFrom names
WORKSPACE = "/home/jenkins/agent"  # HOME and WORKDIR of the images: the checkout goes below it
WORKSPACE_VOLUME = "workspace"
PLAN_TASK = "plan"
CHOOSE_TASK = "choose"
PLAN_POD = "cpu"
PLAN_COMMAND = "hilci plan --json --jenkins --output reports/plan.json"
SOAK_DAG = "hilci-soak"  # the nightly soak's DAG id, and the seed its schedule's H is hashed from (Jenkins: the job)
SOAK_MARGIN_S = 1800  # clone, install and the suites' set-up on top of the soak (the CronJob's margin)
RIG_RESOURCE = "hilci.dev/rig"  # hilci.kube.resources.RIG (a sibling layer): the rig device plugin's resource


def task_id(stage: Stage, board: str | None) -> str:
    """The plan's id of a stage (ci/store/plan.py): "stage", or "stage-board" for a matrix stage."""
    return f"{stage.name}-{board}" if board else stage.name


def stage_command(stage: Stage, board: str | None, rig: str | None) -> str:
    """`hilci stage NAME` as the Jenkinsfile's hilciStage runs it (the rig device plugin's $HILCI_RIG first)."""
    if board:
        return f'hilci stage {stage.name} --board {board} --rig "${{HILCI_RIG:-{rig}}}"'
    return f"hilci stage {stage.name}"


def render_spec(pipeline: Pipeline, root: Path) -> dict:
    """Tasks in pipeline order with the ids of the tasks they need, and the pod spec of each pod template."""
    boards = {b.name: b for b in pipeline.boards}
    tasks: list[dict] = []
    for stage in pipeline.stages:
        for board in ([b.name for b in pipeline.boards] if stage.matrix else [None]):
            tasks.append({
                "id": task_id(stage, board),
                "stage": stage.name,
                "board": board,
                "pod": boards[board].pod if board else stage.pod,
                "command": stage_command(stage, board, boards[board].rig if board else None),
                "needs": _needs(pipeline, stage, board),
                "timeout_s": int(stage.timeout_s),
                "gathers": stage.gathers,
                "cacheable": stage.cacheable,
            })
    pods = {name: pod_spec(root / pipeline.podtemplates_dir / f"{name}.yaml")
            for name in sorted({PLAN_POD} | {t["pod"] for t in tasks} | {b.pod for b in pipeline.boards})}
    return {"plan": {"id": PLAN_TASK, "pod": PLAN_POD, "command": PLAN_COMMAND}, "tasks": tasks,
            "local_rig": pipeline.default_rig, "pods": pods}


def soak_command(board: str, rig: str, duration: str) -> str:
    """`hilci soak` as the Jenkins soak build and the CronJob run it (the rig device plugin's $HILCI_RIG first),
    its JUnit where the handoff uploads it from."""
    return (f'hilci soak --board {board} --rig "${{HILCI_RIG:-{rig}}}" --duration {duration} '
            f"--junit reports/junit/soak-{board}.xml")


def render_soak_spec(pipeline: Pipeline, soak: SoakSettings | None, pods: dict) -> dict | None:
    """The nightly soak DAG as data: hilci.yaml's soak schedule with Jenkins's H made fixed (hashed from the DAG
    id, as Jenkins hashes the job's name), one task per board in its Jetson pod (`pods`: render_spec's). None when
    hilci.yaml has no `soak:` section or the pipeline no board: then no soak DAG is rendered.
    The boards soak in parallel, so each pod must hold its rig (`hilci.dev/rig`): a template without it is refused."""
    if soak is None or not pipeline.boards:
        return None
    seconds = int(parse_duration(soak.duration, "hilci.yaml: soak.duration"))
    tasks = []
    for board in pipeline.boards:
        main = next(c for c in pods[board.pod]["spec"]["containers"] if c["name"] == CONTAINER)
        resources = main.get("resources") or {}
        if any(str((resources.get(kind) or {}).get(RIG_RESOURCE)) != "1" for kind in ("requests", "limits")):
            raise DefinitionError(f"{pipeline.podtemplates_dir}/{board.pod}.yaml: the {CONTAINER} container does not "
                                  f"request {RIG_RESOURCE}: 1 (requests and limits): the nightly soak's boards run "
                                  "in parallel on Airflow, each holding its rig")
        tasks.append({"id": f"soak-{board.name}", "board": board.name, "pod": board.pod,
                      "command": soak_command(board.name, board.rig, soak.duration), "timeout_s": seconds + SOAK_MARGIN_S})
    return {"dag_id": SOAK_DAG, "schedule": without_h(soak.schedule, SOAK_DAG), "hilci_yaml_schedule": soak.schedule,
            "duration": soak.duration, "branch": soak.branch, "tasks": tasks}


def _needs(pipeline: Pipeline, stage: Stage, board: str | None) -> list[str]:
    """The definition's `needs` per board: a matrix stage needs the same board's matrix stages, and every
    board's cell of a matrix stage a non-matrix stage needs; a gathering stage follows every other task."""
    if stage.gathers:
        others = [s for s in pipeline.stages if s is not stage]
    else:
        others = [pipeline.stage(n) for n in stage.needs]
    out = []
    for other in others:
        if not other.matrix:
            out.append(task_id(other, None))
        elif stage.matrix and not stage.gathers:
            out.append(task_id(other, board))
        else:
            out += [task_id(other, b.name) for b in pipeline.boards]
    return out


def pod_spec(path: Path) -> dict:
    """A pod template as the operator's `pod_template_dict`: the Jenkins agent container removed, the `hilci`
    container first and waiting for no one (the operator sets its command), the store Secret required (pods
    hand outputs on through the store only) and a workspace volume for the checkout. Node selectors,
    tolerations, runtimeClassName, GPU and rig resources stay as the template has them."""
    pod = copy.deepcopy(load_yaml(path))
    spec = pod.get("spec") or {}
    containers = [c for c in spec.get("containers") or [] if c.get("name") != AGENT_CONTAINER]
    hilci = [c for c in containers if c.get("name") == CONTAINER]
    if not hilci:
        raise DefinitionError(f"{path}: spec.containers has no {CONTAINER!r} container")
    spec["containers"] = hilci + [c for c in containers if c.get("name") != CONTAINER]
    main = hilci[0]
    main.pop("command", None)  # `sleep infinity` kept a Jenkins agent's container alive; here it does the work
    main.pop("args", None)
    for source in main.get("envFrom") or []:
        if (source.get("secretRef") or {}).get("name") == STORE_SECRET:
            source["secretRef"]["optional"] = False
    main["workingDir"] = WORKSPACE
    mounts = main.setdefault("volumeMounts", [])
    if not any(m.get("mountPath") == WORKSPACE for m in mounts):
        mounts.append({"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE})
        spec.setdefault("volumes", []).append({"name": WORKSPACE_VOLUME, "emptyDir": {}})
    labels = (pod.setdefault("metadata", {})).setdefault("labels", {})
    labels["hilci.dev/engine"] = "airflow"
    pod["spec"] = spec
    return pod


def to_run(ids: list[str], plan: dict | None) -> list[str]:
    """The tasks the choose step follows: those the plan (its XCom) did not find cached. Without a plan's answer
    every task runs: a stage that runs uses the store itself."""
    cached = set((plan or {}).get("cached") or [])
    return [i for i in ids if i not in cached]
