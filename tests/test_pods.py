"""`hilci pods` (`make pods`, ci/jenkins/pods.py): every stage in its own pod template's container.

The fast tests check what it runs against the Jenkinsfile itself (its hilciStage and hilciPlan run under Groovy
with every Jenkins step stubbed: the shell steps they hand to `sh` are the ones `hilci pods` runs) and how a
template becomes the Pod podman plays. The slow ones start real pods with podman over the images `make images`
builds: the whole build (marked `pipeline` too), an image without a stage's tool, a pod whose container cannot
start, and a missing or wrong store Secret.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hilci.example import PIPELINE
from hilci.jenkins import pods
from hilci.jenkins.jenkinsfile import plan_steps, render, stage_steps

ROOT = Path(__file__).resolve().parents[1]
JAVA_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"

# Jenkins's steps as no-ops around their closures, `sh` recording its script (exit 0, empty stdout).
STUBS = r'''
@Field List<String> scripts = []
@Field Map env = [:]
@Field Map params = [BOARDS: 'all']
def sh(Map m) { scripts << m.script; return m.returnStatus ? 0 : (m.returnStdout ? '' : null) }
def methodMissing(String name, args) {
    def last = args ? args[-1] : null
    return (last instanceof Closure) ? last.call() : null
}
def show(String label) { println 'STEPS ' + label + ' ' + groovy.json.JsonOutput.toJson(scripts); scripts.clear() }
'''


def calls() -> list[tuple[str, str, list[str]]]:
    """(label, Groovy call, the steps hilci pods runs for it) for the plan and every stage on every board."""
    out = [("plan", "hilciPlan()", plan_steps())]
    for stage in PIPELINE.stages:
        boards = [b.name for b in PIPELINE.boards] if stage.matrix else [None]
        for board in boards:
            call = f"hilciStage('{stage.name}', {int(stage.timeout_s)}" + (f", '{board}')" if board else ")")
            out.append((pods.key(stage, board), call, stage_steps(PIPELINE, stage, board)))
    return out


def test_hilci_pods_runs_the_shell_steps_of_the_jenkinsfile_s_hilcistage(tmp_path):
    groovy = shutil.which("groovy")
    assert groovy, "groovy is missing: make groovy (apt-get install -y groovy)"
    text = render(PIPELINE)
    script = text[:text.index("\npipeline {")] + STUBS
    expected = calls()
    script += "\n".join(f"{call}\nshow('{label}')" for label, call, _ in expected) + "\n"
    (tmp_path / "steps.groovy").write_text(script)
    env = {**os.environ, "JAVA_HOME": os.environ.get("JAVA_HOME", JAVA_HOME)}
    proc = subprocess.run([groovy, "steps.groovy"], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ran = {}
    for line in proc.stdout.splitlines():
        if line.startswith("STEPS "):
            _, label, steps = line.split(" ", 2)
            ran[label] = json.loads(steps)
    assert ran == {label: steps for label, _, steps in expected}


def test_the_steps_name_the_board_s_rig_unless_the_pod_has_one():
    steps = stage_steps(PIPELINE, PIPELINE.stage("hil"), "orin-nx")
    assert steps[-1] == 'hilci stage hil --board orin-nx --rig "${HILCI_RIG:-hil_tests/rigs/orin-example.yaml}"'
    assert stage_steps(PIPELINE, PIPELINE.stage("build")) == [steps[0], "hilci stage build"]


def test_pods_are_scheduled_in_the_jenkinsfile_s_order():
    scheduled = [(p.template, [s.name for s in p.stages], p.board) for p in pods.schedule(PIPELINE, ["orin-nx"])]
    assert scheduled == [
        ("podtemplates/cpu.yaml", [], None),  # the plan
        ("podtemplates/cpu.yaml", ["build"], None),
        ("podtemplates/gpu.yaml", ["train"], None),
        ("podtemplates/gpu.yaml", ["quantize"], None),
        ("podtemplates/jetson-orin-nx.yaml", ["convert", "hil"], "orin-nx"),  # one pod for the matrix cell
        ("podtemplates/cpu.yaml", ["report"], None),
    ]


def _shape(steps: list) -> list:
    return [[_shape(b) for b in step.branches] if isinstance(step, pods.SideBySide)
            else ([s.name for s in step.stages], step.board) for step in steps]


def test_the_pods_follow_the_jenkinsfile_s_graph_branches_and_boards_side_by_side():
    """build beside the model chain, whose boards run side by side, then the report: the Jenkinsfile's shape
    (hil no longer waits for build in pods either)."""
    assert _shape(pods.graph(PIPELINE, ["orin-nx", "agx-orin"])) == [
        [[(["build"], None)],
         [(["train"], None), (["quantize"], None),
          [[(["convert", "hil"], "orin-nx")], [(["convert", "hil"], "agx-orin")]]]],
        (["report"], None),
    ]


def test_pods_side_by_side_run_at_most_jobs_at_once_in_order_within_a_branch(monkeypatch):
    """Each branch's pods in order, branches overlapping up to `jobs` pods; a branch's error is raised once the
    others ended (Jenkins's parallel without failFast)."""
    import threading

    running, most, order, lock = [0], [0], [], threading.Lock()
    release = threading.Event()

    def fake_run_pod(run, pod, index):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            order.append(pod.id)
        if pod.id == "build":
            release.wait(10)  # build holds its slot until the other branch has come this far
        if pod.id == "quantize":
            release.set()
        with lock:
            running[0] -= 1
        if pod.id == "convert-hil-agx-orin":
            raise RuntimeError("agx-orin's pod failed")

    monkeypatch.setattr(pods, "run_pod", fake_run_pod)
    with pytest.raises(RuntimeError, match="agx-orin"):
        pods.PodRunner(object(), jobs=2).steps(pods.graph(PIPELINE, ["orin-nx", "agx-orin"]))
    assert most[0] == 2  # build beside the model chain, never three pods at once
    assert order.index("train") < order.index("quantize") < order.index("convert-hil-orin-nx")
    assert "convert-hil-orin-nx" in order  # the other board ran to its end
    assert "report" not in order  # a pod that raised (not a stage that failed: that is a result) ends the build


def test_a_stage_after_another_in_its_pod_is_asked_its_when_after_that_one_ran(tmp_path):
    """hil runs in convert's pod and needs convert: the pod starts on convert's `when`, and hil's own is asked once
    convert has passed, as Declarative asks each inner stage's `when` at its turn (asked up front, hil was
    skipped as 'convert did not pass' in every full build, which still exited 0)."""
    run = pods.Run(ROOT, PIPELINE, tmp_path, tmp_path, None, "x", None, ["orin-nx"], None)
    run.passed.update(train=True, quantize=True)
    hil = PIPELINE.stage("hil")
    assert pods.should_run(run, hil, "orin-nx") == (False, "convert did not pass")
    assert pods.should_run(run, hil, "orin-nx", frozenset({"convert"})) == (True, "")
    run.passed["convert-orin-nx"] = True
    assert pods.should_run(run, hil, "orin-nx") == (True, "")


def test_a_jetson_template_becomes_a_pod_podman_can_play_with_the_emulated_rig(tmp_path):
    template = pods.load_template(ROOT, "podtemplates/jetson-orin-nx.yaml")
    spec = pods.pod_spec(template, "hilci-pods-x", tmp_path, "hilci-store-x", "orin-nx")
    assert [c["name"] for c in spec["spec"]["containers"]] == ["hilci"], "the jnlp container is left out"
    assert spec["spec"]["securityContext"] == template["spec"]["securityContext"]
    assert spec["spec"]["securityContext"]["runAsUser"] == 1000
    container = spec["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HILCI_RIG"] == "hil_tests/rigs/sim.yaml" and env["HILCI_BOARD"] == "orin-nx"
    assert env["HILCI_STORE_SECRET"] == "hilci-store", "the template's own value: the note names its Secret"
    assert env["NODE_NAME"] == os.uname().nodename
    assert container["envFrom"] == [{"secretRef": {"name": "hilci-store-x", "optional": True}}]
    assert {"name": "hilci-agent-workspace", "mountPath": "/home/jenkins/agent"} in container["volumeMounts"]
    assert container["workingDir"] == "/home/jenkins/agent/workspace/hilci"
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    assert "runtimeClassName" not in spec["spec"] and "nodeSelector" not in spec["spec"]
    original = pods.load_template(ROOT, "podtemplates/jetson-orin-nx.yaml")
    assert template == original, "the template itself is left as it is"


def test_a_template_without_the_hilci_container_is_named(tmp_path):
    (tmp_path / "podtemplates").mkdir()
    (tmp_path / "podtemplates" / "cpu.yaml").write_text("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n"
                                                        "    - {name: jnlp, image: x}\n")
    with pytest.raises(pods.UsageError, match=r"podtemplates/cpu.yaml: spec.containers has no 'hilci'"):
        pods.load_template(tmp_path, "podtemplates/cpu.yaml")


# --- Real pods (podman), over the images make images builds --------------------------------------------------


def hilci_pods(root: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    if not shutil.which("podman"):
        pytest.fail("podman is missing: make container-tools (as root: apt-get install -y podman runc)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HILCI_", "AWS_"))}
    return subprocess.run([sys.executable, "-m", "hilci", "pods", *args], cwd=root, capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of this checkout (its working tree's changes included) that a test may break."""
    return pods.checkout_copy(ROOT, tmp_path / "checkout")


def summary(root: Path) -> dict[str, dict]:
    data = json.loads((root / "reports" / "pods" / "pods.json").read_text())
    return {s["id"]: s for s in data["stages"]}


@pytest.mark.slow
def test_an_image_without_a_stage_s_tool_is_named_with_the_tool_exit_2(checkout):
    """The cpu template pointed at the jetson image (no groovy, no dev extra): doctor's lines, with the image."""
    path = checkout / "podtemplates" / "cpu.yaml"
    path.write_text(path.read_text().replace("ghcr.io/hilci/hilci-ci:py3.11", "ghcr.io/hilci/hilci-ci-jetson:r36.4"))
    proc = hilci_pods(checkout, "--only", "build")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert ("pods: image ghcr.io/hilci/hilci-ci-jetson:r36.4 (podtemplates/cpu.yaml): groovy is missing (needed by "
            "build): ") in proc.stderr
    assert "ruff is missing (needed by build): pip install 'hilci[dev]'" in proc.stderr
    assert not (checkout / "reports" / "pods" / "pods.json").exists(), "no pod starts"


@pytest.mark.slow
def test_a_pod_that_cannot_start_fails_its_stage_with_the_container_s_error_and_the_report_runs(checkout):
    """The gpu template mounts a device path this machine lacks (a missing mount): train fails with podman's own
    error, and the report pod still runs and reports it."""
    path = checkout / "podtemplates" / "gpu.yaml"
    pod = yaml.safe_load(path.read_text())
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "hilci")
    container["volumeMounts"].append({"name": "rig", "mountPath": "/dev/rig"})
    pod["spec"]["volumes"].append({"name": "rig", "hostPath": {"path": "/dev/serial/by-id/hilci-no-such-device",
                                                               "type": "Directory"}})
    path.write_text(yaml.safe_dump(pod, sort_keys=False))
    proc = hilci_pods(checkout, "--only", "train,report", "--store-secret", "missing")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    stages = summary(checkout)
    assert stages["train"]["status"] == "failed"
    assert "/dev/serial/by-id/hilci-no-such-device: no such file or directory" in stages["train"]["message"]
    assert stages["report"]["status"] == "passed", stages["report"]
    merged = (checkout / "reports" / "pods" / "reports" / "junit.xml").read_text()
    assert "hilci-no-such-device" in merged, "the report shows the pod's error"
    assert (checkout / "reports" / "pods" / "reports" / "index.html").is_file()


NOTE = "no store: the pod template reads Secret 'hilci-store'"


@pytest.mark.slow
@pytest.mark.parametrize("secret", ["missing", "wrong"])
def test_a_missing_or_wrong_store_secret_is_one_note_and_the_stages_run_as_misses(checkout, tmp_path, secret):
    """No Secret (as in another namespace), or one whose keys are misspelt: each stage says so once and runs."""
    arg = secret
    if secret == "wrong":
        arg = str(tmp_path / "secret.json")
        Path(arg).write_text(json.dumps({"HILCI-STORE": "s3://hilci/ci", "AWS_ACCESS_KEY_ID": "k"}))
    proc = hilci_pods(checkout, "--only", "train,report", "--store-secret", arg)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stages = summary(checkout)
    assert [stages[s]["status"] for s in ("plan", "train", "report")] == ["passed"] * 3, "train ran: a miss"
    for pod in ("train", "report"):
        log = (checkout / "reports" / "pods" / "logs" / f"{pod}.log").read_text()
        assert log.count(NOTE) == 1, log[-3000:]


def make_pods_failure(archive: Path, proc: subprocess.CompletedProcess) -> str:
    """What went wrong in a `make pods` run: each stage that did not pass with its message, and the tail of its
    pod's log (reports/pods/logs/), else the tail of make's own output."""
    lines = [f"make pods: exit {proc.returncode}"]
    pod_of = {pods.key(s, p.board): p.id for p in pods.schedule(PIPELINE, [b.name for b in PIPELINE.boards])
              for s in p.stages}
    summary_file = archive / "pods.json"
    if summary_file.is_file():
        for stage in json.loads(summary_file.read_text())["stages"]:
            if stage["status"] in ("passed", "cached"):
                continue
            lines.append(f"stage {stage['id']}: {stage['status']} in {stage['pod']}: {stage['message'][:2000]}")
            log = archive / "logs" / f"{pod_of.get(stage['id'], stage['id'])}.log"
            if log.is_file():
                lines.append(f"--- tail of {log.relative_to(archive)} ---\n{log.read_text()[-4000:]}")
    lines.append(f"--- tail of make pods ---\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.pipeline
@pytest.mark.server
def test_make_pods_runs_every_stage_in_its_pod_and_leaves_junit_and_report():
    """The whole build exactly as `make pods` runs it (CI runs it through this test, once): every stage of every
    board in its pod template's container over the images `make images` built, the SeaweedFS store shared by the
    pods, the build stage's fast tier in the cpu pod; JUnit and report archived in reports/pods/."""
    if not shutil.which("podman"):
        pytest.fail("podman is missing: make container-tools (as root: apt-get install -y podman runc)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HILCI_", "AWS_", "MAKE", "MFLAGS"))}
    proc = subprocess.run(["make", "pods"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=5400)
    archive = ROOT / "reports" / "pods"
    assert proc.returncode == 0, make_pods_failure(archive, proc)
    stages = summary(ROOT)
    boards = [b.name for b in PIPELINE.boards]
    expected = {"plan": "passed", "build": "passed", "train": "passed", "quantize": "passed", "report": "passed"}
    expected.update({f"{s}-{b}": "passed" for s in ("convert", "hil") for b in boards})
    assert {k: v["status"] for k, v in stages.items()} == expected, make_pods_failure(archive, proc)
    assert (archive / "reports" / "index.html").is_file()
    merged = (archive / "reports" / "junit.xml").read_text()
    # each stage's suite: hilci's own for the stages it judges, pytest's (named by the hil plugin) for hil
    suites = ["hilci.build", "hilci.train", "hilci.quantize"]
    suites += [f"hilci.convert.{b}" for b in boards] + [f"hil.{b}" for b in boards]
    for suite in suites:
        assert f'<testsuite name="{suite}' in merged, suite
    for board in boards:
        hil = (archive / "logs" / f"convert-hil-{board}.log").read_text()
        assert "hil_tests/rigs/sim.yaml" in hil, "the hil stage ran on the emulated rig"


def test_ci_runs_make_pods_once_through_the_full_build_test():
    """.ci/run runs no `make pods` of its own: its `make test` runs the full-build test above, which is outside the
    fast tier (the build stage's), so `make test` selects it whether or not that stage was cached."""
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines() if not ln.lstrip().startswith("#")]
    assert "make images" in ci and ci.index("make images") < ci.index("make test"), ci
    assert not any("make pods" in ln or "hilci pods" in ln for ln in ci), ci
    marks = {m.name for m in test_make_pods_runs_every_stage_in_its_pod_and_leaves_junit_and_report.pytestmark}
    assert "slow" in marks, "outside the fast tier: make test runs it after the build stage's fast tier"


def test_an_unstable_stage_names_its_failed_tests(tmp_path):
    """What Jenkins's test report would list: the summary line of a stage that failed says which tests."""
    from hilci.results.junit import make_case, write_suite

    path = write_suite(tmp_path / "build.xml", "hilci.build", [
        make_case("ok", "tests.test_a"), make_case("test_b", "tests.test_b", failure="assert 1 == 2")])
    assert pods.failed_cases(path) == "; failed: tests.test_b::test_b (assert 1 == 2)"
    assert pods.failed_cases(write_suite(tmp_path / "ok.xml", "s", [make_case("ok", "t")])) == ""


def test_an_archive_glob_ending_in_double_star_keeps_every_file_below_it(tmp_path):
    """`reports/**` (the report stage's archiveArtifacts) means every file below reports/, as in Jenkins; pathlib's
    glob of it yields only folders, which once left the merged JUnit and the HTML report out of reports/pods/."""
    from hilci.jenkins.pods import archive

    ws, out = tmp_path / "ws", tmp_path / "out"
    (ws / "reports" / "junit").mkdir(parents=True)
    (ws / "reports" / "junit.xml").write_text("<testsuites/>")
    (ws / "reports" / "junit" / "train.xml").write_text("<testsuites/>")
    archive(ws, out, ["reports/**"])
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "reports/junit.xml", "reports/junit/train.xml"]
