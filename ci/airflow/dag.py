"""Build the Airflow DAG from the data `hilci airflow` rendered (dags/hilci_pipeline.py calls `build_dag`).

The graph: `plan` (a CPU pod: `hilci plan --json --jenkins`, the cached stage ids as XCom) -> `choose` (skips the
cached tasks before any pod is asked for) -> one task per stage and board, each after the tasks it needs; the
gathering `report` runs after all of them, whatever happened, and returns the run's summary as XCom.
A stage's task runs when nothing it needs failed (`none_failed`: a cached need is skipped, not failed).

Cluster mode: each task is a KubernetesPodOperator pod made from its pod template. Local mode
(HILCI_AIRFLOW_LOCAL=1): the same graph with one task per stage (a matrix stage once, as `hilci run` runs it),
each running `hilci stage NAME` in a subprocess in $HILCI_ROOT (or the working directory).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.standard.operators.python import BranchPythonOperator, PythonOperator
from airflow.sdk import DAG, Param
from kubernetes.client.models import V1ConfigMapKeySelector, V1EnvVar, V1EnvVarSource

from hilci.airflow.handoff import RUN_ENV, merge_all, summary
from hilci.airflow.spec import CHOOSE_TASK, CONTAINER, PLAN_TASK, WORKSPACE, to_run

SOAK_CONFIGMAP = "hilci-soak"  # the CronJobs' ConfigMap (deploy/soak-cronjobs.yaml): the repository a soak clones

DAG_ID = "hilci"
LOCAL_ENV = "HILCI_AIRFLOW_LOCAL"
VERDICT_TASK = "verdict"
NAMESPACE = "hilci-ci"  # deploy/namespace.yaml: Pod Security `restricted` is enforced there
POD_START_TIMEOUT_S = 900  # a Jetson pod waits for its rig (hilci.dev/rig: 1) while another run holds it
POD_SLACK_S = 600  # checkout and install before `hilci stage`, on top of the stage's own limit
LOCAL_PLAN_TIMEOUT_S = 300
# The XCom sidecar, as Pod Security `restricted` and our pod rules ask (the provider adds it bare).
SIDECAR_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
                    "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}
SIDECAR_RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}
SIDECAR_NAME = "airflow-xcom-sidecar"


def local_mode() -> bool:
    return os.environ.get(LOCAL_ENV, "0") == "1"


def build_dag(spec: dict, local: bool | None = None) -> DAG:
    """The DAG of the rendered spec; `local` defaults to $HILCI_AIRFLOW_LOCAL."""
    local = local_mode() if local is None else local
    tasks = local_tasks(spec["tasks"], spec["local_rig"]) if local else spec["tasks"]
    with DAG(
        dag_id=DAG_ID,
        description="hilci pipeline: plan, then every stage (per Jetson board) after what it needs",
        schedule=None,  # triggered on push through the REST API (docs/airflow.md); the soak is its own DAG
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,  # one run holds the rigs at a time, as Jenkins's disableConcurrentBuilds
        tags=["hilci", "local" if local else "kubernetes"],
        params={
            "repo": Param("", type="string", description="git URL the pods clone (cluster mode)"),
            "commit": Param("HEAD", type="string", description="commit or branch to build"),
        },
        doc_md=__doc__,
    ) as dag:
        plan = _local_plan() if local else _pod_task(spec["plan"], spec, "plan")
        choose = BranchPythonOperator(task_id=CHOOSE_TASK, python_callable=choose_tasks,
                                      op_kwargs={"ids": [t["id"] for t in tasks], "follow_all": local})
        plan >> choose
        ops = {t["id"]: (_local_task(t) if local else _pod_task(t, spec, "stage")) for t in tasks}
        for t in tasks:
            choose >> ops[t["id"]]
            for need in t["needs"]:
                ops[need] >> ops[t["id"]]
        gathering = next((t["id"] for t in tasks if t["gathers"]), None)
        verdict = PythonOperator(task_id=VERDICT_TASK, python_callable=judge, op_kwargs={"report": gathering},
                                 trigger_rule="none_failed")
        for op in ops.values():
            op >> verdict
    return dag


def build_soak_dag(spec: dict, soak: dict, local: bool | None = None) -> DAG | None:
    """The nightly soak DAG (`soak`: spec.render_soak_spec's data): one pod per board running `hilci soak`, all at
    the schedule, in parallel (each pod holds its own rig through `hilci.dev/rig`, so a board waits only for its
    rig, not for the other boards). None in local mode: `hilci soak` runs there directly."""
    if local_mode() if local is None else local:
        return None
    with DAG(
        dag_id=soak["dag_id"],
        description=f"hilci nightly soak: `hilci soak --duration {soak['duration']}` on every board's rig",
        schedule=soak["schedule"],  # hilci.yaml soak.schedule, Jenkins's H made a fixed value (UTC)
        start_date=datetime(2026, 1, 1),
        catchup=False,  # a night missed is not soaked later
        max_active_runs=1,  # a night's soak never overlaps the last one on the rigs
        tags=["hilci", "soak", "kubernetes"],
        params={
            "repo": Param("", type="string", description=f"git URL the pods clone ('': ConfigMap {SOAK_CONFIGMAP}'s "
                                                         "key repository)"),
            "commit": Param("", type="string", description=f"commit or branch ('': ConfigMap {SOAK_CONFIGMAP}'s key "
                                                           f"ref, else {soak['branch']})"),
        },
        doc_md=build_soak_dag.__doc__,
    ) as dag:
        for task in soak["tasks"]:
            _pod_task({**task, "gathers": False, "branch": soak["branch"]}, spec, "soak")
    return dag


def judge(report: str | None, ti=None, **_context) -> dict | None:
    """The run's last task: Airflow judges a run by its leaves, and `report` succeeds after failed stages too.
    Fails (upstream_failed) when a stage failed, and when the report's summary is not a pass."""
    if report is None:
        return None
    summary = ti.xcom_pull(task_ids=report)
    if not summary or summary.get("verdict") != "passed":
        raise RuntimeError(f"the run did not pass: {summary}")
    return summary


def local_tasks(tasks: list[dict], rig: str) -> list[dict]:
    """The tasks `hilci run` runs: a matrix stage once, on the pipeline's default rig (as `hilci run` without
    --rig), needs mapped from boards to stages."""
    out: dict[str, dict] = {}
    stage_of = {t["id"]: t["stage"] for t in tasks}
    for t in tasks:
        if t["stage"] in out:
            continue
        needs = list(dict.fromkeys(stage_of[n] for n in t["needs"]))
        args = ["stage", t["stage"], *(["--rig", rig] if t["board"] else [])]
        out[t["stage"]] = {**t, "id": t["stage"], "board": None, "needs": needs, "args": args,
                           "command": "hilci " + " ".join(args)}
    return list(out.values())


def choose_tasks(ids: list[str], follow_all: bool = False, ti=None, **_context) -> list[str]:
    """The tasks to run: those the plan did not find cached (a skipped cached task counts as passed for the
    tasks that need it). Locally there is no pod to save: every task runs and `hilci stage` uses the cache."""
    if follow_all:
        return list(ids)
    return to_run(ids, ti.xcom_pull(task_ids=PLAN_TASK))


# --- cluster mode --------------------------------------------------------------------------------------------

class HilciPodOperator(KubernetesPodOperator):
    """The operator with limits on its XCom sidecar (the provider gives it requests only)."""

    def build_pod_request_obj(self, context=None, *, dry_run: bool = False):
        pod = super().build_pod_request_obj(context, dry_run=dry_run)
        for container in pod.spec.containers:
            if container.name == SIDECAR_NAME and not (container.resources and container.resources.limits):
                container.resources = SIDECAR_RESOURCES
        return pod


def pod_script(task: dict, kind: str) -> str:
    """The pod's shell: check out the commit, install hilci, run the step, hand its JUnit on, keep its exit code.
    A soak (scheduled: no params given) clones what ConfigMap hilci-soak names, as the soak CronJobs do."""
    lines = ["set -eu"]
    missing = "the run has no repo param (the URL to clone)"
    if kind == "soak":
        lines += ['HILCI_GIT_URL="${HILCI_GIT_URL:-${HILCI_SOAK_REPO:-}}"',
                  f'HILCI_COMMIT="${{HILCI_COMMIT:-${{HILCI_SOAK_REF:-{task["branch"]}}}}}"']
        missing = (f"no repository to soak: key repository of ConfigMap {SOAK_CONFIGMAP} in namespace {NAMESPACE} "
                   "(docs/soak.md), or the run's repo param")
    lines += [f'test -n "$HILCI_GIT_URL" || {{ echo "hilci: error: {missing}" >&2; exit 2; }}',
             'git clone --quiet "$HILCI_GIT_URL" src && cd src && git checkout --quiet "$HILCI_COMMIT"',
             "python -m pip install --quiet --no-deps --no-build-isolation -e ."]
    if kind == "plan":
        return "\n".join(lines + [f"{task['command']} > /dev/null", "python -m hilci.airflow.handoff plan"])
    if task["gathers"]:
        lines.append("python -m hilci.airflow.handoff pull")
    lines += ["rc=0", f"{task['command']} || rc=$?"]
    if kind == "soak":
        lines.append(f'python -m hilci.airflow.handoff soak --task {task["id"]} --exit-code "$rc" || exit 2')
    elif task["gathers"]:
        lines.append("python -m hilci.airflow.handoff publish || exit 2")
    else:
        lines.append(f'python -m hilci.airflow.handoff push --task {task["id"]} --exit-code "$rc" || exit 2')
    return "\n".join(lines + ['exit "$rc"'])


def _pod_task(task: dict, spec: dict, kind: str) -> KubernetesPodOperator:
    pod = spec["pods"][task["pod"]]
    image = next(c["image"] for c in pod["spec"]["containers"] if c["name"] == CONTAINER)
    timeout_s = task.get("timeout_s", LOCAL_PLAN_TIMEOUT_S) + POD_SLACK_S
    return HilciPodOperator(
        task_id=task["id"],
        name=f"hilci-{task['id']}",
        namespace=NAMESPACE,
        image=image,
        pod_template_dict=pod,
        base_container_name=CONTAINER,
        cmds=["bash", "-c"],
        arguments=[pod_script(task, kind)],
        env_vars=_env(kind),
        do_xcom_push=True,
        xcom_sidecar_container_security_context=SIDECAR_SECURITY,
        startup_timeout_seconds=POD_START_TIMEOUT_S,
        execution_timeout=timedelta(seconds=timeout_s),
        active_deadline_seconds=timeout_s,
        get_logs=True,
        on_finish_action="delete_pod",
        trigger_rule=_trigger_rule(task, kind),
        retries=0,  # a failed gate is a result, not a fault to retry
    )


def _env(kind: str) -> list[V1EnvVar]:
    """The run's id and params; a soak also reads the repository from the CronJobs' ConfigMap (optional keys:
    without them the pod's shell says what is missing in one line)."""
    env = [V1EnvVar(name=RUN_ENV, value="{{ run_id }}"), V1EnvVar(name="HILCI_GIT_URL", value="{{ params.repo }}"),
           V1EnvVar(name="HILCI_COMMIT", value="{{ params.commit }}"), V1EnvVar(name="HILCI_WORKSPACE", value=WORKSPACE)]
    if kind == "soak":
        env += [V1EnvVar(name=name, value_from=V1EnvVarSource(config_map_key_ref=V1ConfigMapKeySelector(
                    name=SOAK_CONFIGMAP, key=key, optional=True)))
                for name, key in (("HILCI_SOAK_REPO", "repository"), ("HILCI_SOAK_REF", "ref"))]
    return env


def _trigger_rule(task: dict, kind: str) -> str:
    if kind in ("plan", "soak"):
        return "all_success"
    return "all_done" if task["gathers"] else "none_failed"


# --- local mode ----------------------------------------------------------------------------------------------

def _local_plan() -> PythonOperator:
    return PythonOperator(task_id="plan", python_callable=run_local_plan,
                          execution_timeout=timedelta(seconds=LOCAL_PLAN_TIMEOUT_S))


def _local_task(task: dict) -> PythonOperator:
    return PythonOperator(task_id=task["id"], python_callable=run_local_stage,
                          op_kwargs={"args": task["args"], "timeout_s": task["timeout_s"],
                                     "gathers": task["gathers"]},
                          execution_timeout=timedelta(seconds=task["timeout_s"] + 60),
                          trigger_rule=_trigger_rule(task, "stage"))


def _root() -> Path:
    return Path(os.environ.get("HILCI_ROOT") or os.getcwd()).resolve()


def _hilci(*args: str, timeout_s: float, capture: bool = False) -> subprocess.CompletedProcess:
    root = _root()
    env = {**os.environ, "HILCI_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "hilci", *args], cwd=root, env=env, timeout=timeout_s,
                          stdin=subprocess.DEVNULL, capture_output=capture, text=True)


def run_local_plan() -> dict:
    """`hilci plan --json` in the project: its cached ids and commit, as the pod's plan step hands them on."""
    import json

    proc = _hilci("plan", "--json", timeout_s=LOCAL_PLAN_TIMEOUT_S, capture=True)
    if proc.returncode != 0:
        raise RuntimeError(f"hilci plan --json exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    plan = json.loads(proc.stdout)
    return {"cached": plan.get("cached", []), "commit": plan.get("commit", ""), "store": plan.get("store", "")}


def run_local_stage(args: list[str], timeout_s: float, gathers: bool) -> dict:
    """`hilci stage NAME [--rig RIG]` in a subprocess; a failing exit fails the task. The gathering stage
    returns the run's summary (counts, verdict, where the JUnit and report are)."""
    stage = args[1]
    proc = _hilci(*args, timeout_s=timeout_s)
    root = _root()
    if gathers and merge_all(root) is not None:
        result = summary(root / "reports/junit.xml", (root / "reports/junit.xml").as_uri(),
                         (root / "reports/index.html").as_uri())
    else:
        result = {"stage": stage, "exit_code": proc.returncode}
    if proc.returncode != 0:
        raise RuntimeError(f"hilci stage {stage} exited {proc.returncode} ({result})")
    return result
