"""The pipeline as an Airflow DAG: imports cleanly, follows the definition's `needs` per board, renders pods
that pass the strict schema and our pod rules, and runs locally with `dag.test()` as `hilci run` runs.

Needs the `airflow` extra (Python >= 3.11). Without it these tests fail and say so; `make test` deselects the
`airflow` marker where the extra cannot install, and the build stage's fast tier leaves out `slow` (docs/airflow.md).
Airflow runs in child processes (tests/airflow_probe.py) with AIRFLOW_HOME in tmp_path: its settings and
logging never reach this process.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hilci.example import PIPELINE
from hilci.kube.podtemplates import Document, check_security, validate_schema
from hilci.pipeline.model import Board, Pipeline, Stage
from hilci.results.junit import read_cases
from tests.scratch import child_env

# slow: each test starts Airflow in a child (4-6 s to import, more under load): never in the fast tier, which the
# build stage runs where Airflow is not installed.
pytestmark = [pytest.mark.airflow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
DAG_FILE = ROOT / "dags" / "hilci_pipeline.py"
PROBE = Path(__file__).with_name("airflow_probe.py")


def _behave(name: str, **kw) -> Stage:
    return Stage(name=name, pod="cpu", does=f"test stage {name}", entry="tests.fixture_pipelines:behave", **kw)


# A small pipeline of the same shape: a line, a matrix stage on a board, a gathering report (the real one).
GRAPH = Pipeline(
    stages=(
        _behave("gen", inputs=("src/input.txt",), outputs=("out/gen",)),
        _behave("check", inputs=("out/gen/*.txt",), outputs=("out/check",), needs=("gen",)),
        Stage(name="probe", pod="jetson", does="a HIL-like stage", entry="tests.fixture_pipelines:behave",
              matrix=True, needs=("check",)),
        Stage(name="report", pod="cpu", does="merge JUnit, HTML report", entry="hilci.builtin.stages:report",
              gathers=True, cacheable=False),
    ),
    boards=(Board(name="orin-nx", rig="rig.yaml"),),
    default_rig="rig.yaml",
)


@pytest.fixture(autouse=True)
def _airflow_installed():
    if importlib.util.find_spec("airflow") is None:
        pytest.fail("Apache Airflow is not installed: pip install -c constraints.txt -e '.[airflow]' "
                    "(Python >= 3.11), or deselect with -m 'not airflow'", pytrace=False)


def _probe(step: str, dag_file: Path, home: Path, timeout: float = 120, **env) -> dict:
    proc = subprocess.run([sys.executable, str(PROBE), step, str(dag_file)], capture_output=True, text=True,
                          timeout=timeout, cwd=env.get("HILCI_ROOT", ROOT), stdin=subprocess.DEVNULL,
                          env=child_env(AIRFLOW_HOME=str(home), PYTHONPATH=str(ROOT), **env))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def described(tmp_path_factory) -> dict:
    return _probe("describe", DAG_FILE, tmp_path_factory.mktemp("airflow-home"))


def expected_graph(pipeline: Pipeline) -> dict[str, set[str]]:
    """Each task's needs, from the definition: a matrix stage per board after the same board's cells, a
    gathering stage after everything."""
    def ids(stage: Stage) -> list[str]:
        return [f"{stage.name}-{b.name}" for b in pipeline.boards] if stage.matrix else [stage.name]

    graph: dict[str, set[str]] = {}
    for stage in pipeline.stages:
        for i, task in enumerate(ids(stage)):
            needs: set[str] = set()
            others = [s for s in pipeline.stages if s is not stage] if stage.gathers else \
                [pipeline.stage(n) for n in stage.needs]
            for other in others:
                if other.matrix and stage.matrix:
                    needs.add(ids(other)[i])
                else:
                    needs.update(ids(other))
            graph[task] = needs
    return graph


def test_the_dag_file_imports_without_errors(described):
    assert described["import_errors"] == {}
    assert described["warnings"] == {}  # no deprecated (Airflow 2) idiom
    assert described["dags"] == ["hilci", "hilci-soak"]  # the pipeline and its nightly soak (hilci.yaml soak:)


def test_the_task_graph_is_the_definition_s_needs_per_board(described):
    tasks = described["tasks"]
    graph = expected_graph(PIPELINE)
    assert set(tasks) == set(graph) | {"plan", "choose", "verdict"}
    # the last task: Airflow judges a run by its leaves, and `report` succeeds after failed stages too
    assert set(tasks["verdict"]["upstream"]) == set(graph) and tasks["verdict"]["trigger_rule"] == "none_failed"
    assert tasks["plan"]["upstream"] == [] and tasks["choose"]["upstream"] == ["plan"]
    for task, needs in graph.items():
        # every stage waits for the plan's choice: cached stages are skipped before a pod is asked for
        assert set(tasks[task]["upstream"]) == needs | {"choose"}, task
    assert {"hil-orin-nx", "hil-agx-orin"} <= set(tasks) and graph["hil-orin-nx"] == {"convert-orin-nx"}
    assert tasks["report"]["trigger_rule"] == "all_done"
    assert tasks["hil-orin-nx"]["trigger_rule"] == "none_failed"  # a cached need is skipped, not failed
    assert tasks["choose"]["operator"] == "BranchPythonOperator"


def test_every_task_s_pod_passes_the_strict_schema_and_our_pod_rules(described):
    pods = described["pods"]
    assert set(pods) == set(expected_graph(PIPELINE)) | {"plan"}
    for task, pod in pods.items():
        doc = Document(Path(f"{task} (dry-run pod)"), 0, pod)
        validate_schema(doc)
        check_security(doc)


def _template_hilci(name: str) -> tuple[dict, dict]:
    import yaml

    pod = yaml.safe_load((ROOT / "podtemplates" / f"{name}.yaml").read_text())
    return pod["spec"], next(c for c in pod["spec"]["containers"] if c["name"] == "hilci")


@pytest.mark.parametrize("task, template", [("build", "cpu"), ("train", "gpu"), ("quantize", "gpu"),
                                            ("convert-orin-nx", "jetson-orin-nx"),
                                            ("hil-agx-orin", "jetson-agx-orin"), ("plan", "cpu")])
def test_a_pod_keeps_its_template_s_placement_and_resources_without_the_jenkins_agent(described, task, template):
    pod = described["pods"][task]["spec"]
    spec, hilci = _template_hilci(template)
    names = [c["name"] for c in pod["containers"]]
    assert names == ["hilci", "airflow-xcom-sidecar"]  # jnlp gone: the operator merges by position
    assert pod.get("nodeSelector") == spec.get("nodeSelector")
    assert (pod.get("tolerations") or None) == spec.get("tolerations")
    assert pod.get("runtimeClassName") == spec.get("runtimeClassName")
    assert pod["securityContext"] == spec["securityContext"]
    container = pod["containers"][0]
    assert container["resources"] == hilci["resources"]  # GPU and rig (extended resources) included
    assert container["image"] == hilci["image"]
    assert {"secretRef": {"name": "hilci-store", "optional": False}} in container["envFrom"]
    sidecar = pod["containers"][1]
    assert sidecar["securityContext"]["allowPrivilegeEscalation"] is False
    assert sidecar["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert sidecar["resources"]["limits"]["memory"]


def test_a_stage_pod_runs_the_jenkins_stage_s_command(described):
    script = described["pods"]["hil-orin-nx"]["spec"]["containers"][0]["args"][0]
    # the Jenkinsfile's hilciStage: `hilci stage NAME --board B --rig "${HILCI_RIG:-RIG}"`
    assert 'hilci stage hil --board orin-nx --rig "${HILCI_RIG:-hil_tests/rigs/orin-example.yaml}" || rc=$?' in script
    assert "handoff push --task hil-orin-nx" in script and script.endswith('exit "$rc"')
    assert script.index('test -n "$HILCI_GIT_URL"') < script.index("git clone")  # no repo param: one line, exit 2
    plan = described["pods"]["plan"]["spec"]["containers"][0]["args"][0]
    assert "hilci plan --json --jenkins" in plan and "handoff plan" in plan
    report = described["pods"]["report"]["spec"]["containers"][0]["args"][0]
    assert report.index("handoff pull") < report.index("hilci stage report") < report.index("handoff publish")


def test_the_soak_dag_runs_every_board_nightly_at_hilci_yaml_s_schedule(described):
    from hilci.pipeline.config import load
    from hilci.pipeline.soakschedule import without_h

    soak, settings = described["soak"], load(ROOT, PIPELINE).soak
    assert soak["schedule"] == without_h(settings.schedule, "hilci-soak")  # H fixed as for the CronJobs
    assert soak["max_active_runs"] == 1 and soak["catchup"] is False
    boards = [b.name for b in PIPELINE.boards]
    assert set(soak["tasks"]) == {f"soak-{b}" for b in boards}
    for task in soak["tasks"].values():
        # in parallel: each pod holds its own rig, so a board waits only for its rig
        assert task["upstream"] == [] and task["operator"] == "HilciPodOperator"


def test_every_soak_task_s_pod_passes_the_strict_schema_and_our_pod_rules(described):
    pods = described["soak"]["pods"]
    assert set(pods) == {f"soak-{b.name}" for b in PIPELINE.boards}
    for task, pod in pods.items():
        doc = Document(Path(f"{task} (dry-run pod)"), 0, pod)
        validate_schema(doc)
        check_security(doc)


@pytest.mark.parametrize("board", [b for b in PIPELINE.boards], ids=lambda b: b.name)
def test_a_soak_pod_is_the_board_s_jetson_pod_running_hilci_soak(described, board):
    from hilci.pipeline.config import load

    pod = described["soak"]["pods"][f"soak-{board.name}"]["spec"]
    spec, hilci = _template_hilci(board.pod)
    assert [c["name"] for c in pod["containers"]] == ["hilci", "airflow-xcom-sidecar"]  # no jnlp
    for key in ("nodeSelector", "tolerations", "runtimeClassName", "securityContext"):
        assert pod.get(key) == spec.get(key), key
    container = pod["containers"][0]
    assert container["resources"] == hilci["resources"]
    assert container["resources"]["requests"]["hilci.dev/rig"] == "1"  # the rig, held for the whole soak
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"secretRef": {"name": "hilci-store", "optional": False}} in container["envFrom"]
    script = container["args"][0]
    duration = load(ROOT, PIPELINE).soak.duration
    assert (f'hilci soak --board {board.name} --rig "${{HILCI_RIG:-{board.rig}}}" --duration {duration} '
            f"--junit reports/junit/soak-{board.name}.xml || rc=$?") in script
    assert f"handoff soak --task soak-{board.name}" in script and script.endswith('exit "$rc"')
    # a scheduled run has no params: the repository comes from the soak CronJobs' ConfigMap
    env = {e["name"]: e for e in container["env"]}
    assert env["HILCI_SOAK_REPO"]["valueFrom"]["configMapKeyRef"] == {"name": "hilci-soak", "key": "repository",
                                                                       "optional": True}
    assert script.index('HILCI_GIT_URL="${HILCI_GIT_URL:-${HILCI_SOAK_REPO:-}}"') < script.index("git clone")


def test_the_cli_checks_the_committed_dag_file(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hilci", "airflow", "--check"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, stdin=subprocess.DEVNULL,
                          env=child_env(AIRFLOW_HOME=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert "dags/hilci_pipeline.py: ok (6 stages, 2 boards)" in proc.stdout


def _project(root: Path) -> Path:
    (root / "podtemplates").mkdir(parents=True)
    for name in ("cpu", "jetson-orin-nx"):
        (root / "podtemplates" / f"{name}.yaml").write_text((ROOT / "podtemplates" / f"{name}.yaml").read_text())
    (root / "src").mkdir()
    (root / "src" / "input.txt").write_text("input v1\n")
    (root / "hilci.yaml").write_text("gen:\n  write: {out/gen/a.txt: 'a'}\n")
    (root / "rig.yaml").write_text("name: r\nemulate: true\n"
                                   "devices:\n  imu: {driver: imu, port: /dev/serial/by-id/usb-x, baud: 921600}\n")
    return root


def _dag_test(project: Path, spec: str, home: Path) -> dict:
    """`hilci airflow --write` in the project, `airflow db migrate` (SQLite), then dag.test() in local mode."""
    dag_file = project / "dags" / "hilci_pipeline.py"
    proc = subprocess.run([sys.executable, "-m", "hilci", "airflow", "--write"], cwd=project, env=child_env(
        PYTHONPATH=str(ROOT), HILCI_PIPELINE=spec, AIRFLOW_HOME=str(home)), capture_output=True, text=True,
        timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and dag_file.is_file(), proc.stderr
    # dag.test() runs what the DAG processor found in the dags folder (a bundle): the project's dags/
    airflow_env = {"AIRFLOW__CORE__DAGS_FOLDER": str(dag_file.parent), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    migrate = subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], capture_output=True,
                             text=True, timeout=300, stdin=subprocess.DEVNULL,
                             env=child_env(AIRFLOW_HOME=str(home), **airflow_env))
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    return _probe("run", dag_file, home, timeout=600, HILCI_ROOT=str(project), HILCI_PIPELINE=spec,
                  HILCI_AIRFLOW_LOCAL="1", CI="true", **airflow_env)


def _testcases(root: Path) -> set[tuple[str, str, str]]:
    return {(c.classname, c.name, str(c.status)) for c in read_cases(root / "reports" / "junit.xml")}


@pytest.mark.slow
@pytest.mark.pipeline
def test_local_mode_runs_the_pipeline_as_hilci_run_does(tmp_path):
    spec = "tests.test_airflow:GRAPH"
    by_run, by_dag = _project(tmp_path / "run"), _project(tmp_path / "dag")
    env = child_env(PYTHONPATH=str(ROOT), HILCI_PIPELINE=spec, CI="true")
    proc = subprocess.run([sys.executable, "-m", "hilci", "run"], cwd=by_run, env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    result = _dag_test(by_dag, spec, tmp_path / "airflow-home")
    assert result["state"] == "success", result
    assert result["tasks"] == {"plan": "success", "choose": "success", "gen": "success", "check": "success",
                               "probe": "success", "report": "success", "verdict": "success"}
    assert _testcases(by_dag) == _testcases(by_run)
    assert (by_dag / "reports" / "index.html").is_file()
    summary = result["summary"]
    assert summary["verdict"] == "passed"
    assert summary["counts"]["tests"] == len(_testcases(by_run)) and summary["counts"]["failed"] == 0
    assert summary["junit"] == (by_dag / "reports" / "junit.xml").resolve().as_uri()
    assert summary["report"].endswith("reports/index.html")


def test_check_fails_on_a_stale_dag_file(tmp_path):
    stale = tmp_path / "hilci_pipeline.py"
    stale.write_text(DAG_FILE.read_text().replace("'timeout_s': 3600", "'timeout_s': 60", 1))
    proc = subprocess.run([sys.executable, "-m", "hilci", "airflow", "--check", "--file", str(stale)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, stdin=subprocess.DEVNULL,
                          env=child_env(AIRFLOW_HOME=str(tmp_path)))
    assert proc.returncode == 1
    assert "differs from the rendering of the pipeline definition; run `hilci airflow --write`" in proc.stderr
    assert "-            'timeout_s': 60," in proc.stderr


@pytest.mark.slow
@pytest.mark.pipeline
def test_a_failed_stage_fails_its_dependents_and_the_report_still_runs(tmp_path):
    project = _project(tmp_path / "dag")
    (project / "hilci.yaml").write_text("gen:\n  write: {out/gen/a.txt: 'a'}\ncheck:\n  value: 0.1\n")  # gate fails
    result = _dag_test(project, "tests.test_airflow:GRAPH", tmp_path / "airflow-home")
    assert result["state"] == "failed"
    assert result["tasks"] == {"plan": "success", "choose": "success", "gen": "success", "check": "failed",
                               "probe": "upstream_failed", "report": "success", "verdict": "upstream_failed"}
    summary = result["summary"]
    assert summary["verdict"] == "failed" and summary["counts"]["failed"] == 1
    assert ("hilci.check", "check gate", "failed") in {(c, n, s) for c, n, s in _testcases(project)}
