"""`hilci plan` and `hilci run -n` (12.3): run or cached and why; keys that do not depend on what is installed;
the Jenkins plan step and `hilci stage` restoring what the plan skipped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hilci.pipeline.model import Pipeline, Stage
from hilci.store.keys import explain, key_for, pinned_versions
from tests.conftest import REPO, hilci
from tests.test_runner import GOOD, runs

pytestmark = [pytest.mark.pipeline]  # what it needs: the fast tier leaves it out


def plan_lines(stdout: str) -> dict[str, str]:
    """{stage: 'decision  first why'} from the human plan."""
    out = {}
    for line in stdout.splitlines()[1:]:
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[1] in ("run", "cached"):
            out[parts[0]] = f"{parts[1]}  {parts[2] if len(parts) > 2 else ''}"
    return out


def test_a_dry_run_says_run_or_cached_and_why_and_runs_nothing(project: Path):
    proc = hilci(project, "run", "-n")
    assert proc.returncode == 0, proc.stderr
    assert plan_lines(proc.stdout) == {"gen": "run  no cached entry yet", "check": "run  no cached entry yet",
                                       "final": "run  not cacheable: always runs"}
    assert runs(project) == [] and not (project / "reports" / "run.json").exists()
    assert hilci(project, "run").returncode == 0
    lines = plan_lines(hilci(project, "run", "-n").stdout)
    assert lines["gen"].startswith("cached  cached from") and lines["check"].startswith("cached")
    (project / "src/input.txt").write_text("input v2\n")
    (project / "hilci.yaml").write_text(GOOD.replace("checked\\n", "checked twice\\n"))
    proc = hilci(project, "plan")
    assert proc.returncode == 0, proc.stderr
    assert "gen    run     input src/input.txt changed" in proc.stdout
    assert "check  run     upstream stage gen changed (it reruns)" in proc.stdout
    assert "setting check.write.out/check/ok.txt 'checked\\n' -> 'checked twice\\n'" in proc.stdout
    assert "3 to run, 0 cached" in proc.stdout


def _repo_like(root: Path, torch_pin: str) -> tuple[Path, Pipeline]:
    (root / "podtemplates").mkdir(parents=True)
    (root / "podtemplates" / "gpu.yaml").write_text("kind: Pod\nspec: {containers: [{image: x@sha256:1}]}\n")
    (root / "constraints.txt").write_text(f"# pins\ntorch=={torch_pin}\n")
    (root / "pyproject.toml").write_text('dependencies = ["numpy>=1.24", "scikit-learn >= 1.3"]\n')
    (root / "train.py").write_text("print('train')\n")
    stage = Stage(name="train", pod="gpu", does="t", entry="m:f", inputs=("train.py",), outputs=("out",),
                  tools=("torch", "numpy", "scikit_learn", "tensorrt"))
    return root, Pipeline(stages=(stage,))


def test_tool_versions_come_from_the_pins_not_from_what_is_installed(tmp_path: Path):
    root, pipeline = _repo_like(tmp_path / "a", "2.13.0")
    assert pinned_versions(root, pipeline.stages[0].tools) == {"torch": "==2.13.0", "numpy": ">=1.24",
                                                               "scikit_learn": ">=1.3", "tensorrt": "unpinned"}
    key, parts = key_for(root, pipeline, {"train": {"epochs": 10}}, pipeline.stages[0], None)
    (root / "constraints.txt").write_text("torch==2.14.0\n")
    key2, parts2 = key_for(root, pipeline, {"train": {"epochs": 12}}, pipeline.stages[0], None)
    assert key != key2
    assert explain(parts, parts2) == ["tool torch ==2.13.0 -> ==2.14.0", "setting train.epochs 10 -> 12"]


@pytest.mark.pipeline  # copies the project with `git ls-files`: not inside the build stage's scratch copy
def test_a_cpu_pod_without_the_tools_computes_the_gpu_pods_key(tmp_path: Path):
    """The project's own plan, once as here and once where torch cannot be imported and every installed
    version reads differently: the keys are the same."""
    from tests.scratch import scratch_copy

    root = scratch_copy(tmp_path / "repo")
    normal = hilci(root, "plan", "--json", "--jenkins", pipeline="hilci.example:PIPELINE")
    assert normal.returncode == 0, normal.stderr
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text("raise ImportError('no torch on this pod')\n")
    (fake / "sitecustomize.py").write_text(
        "import importlib.metadata as m\nm.version = lambda name: '0.0.0-not-what-the-gpu-pod-has'\n")
    bare = hilci(root, "plan", "--json", "--jenkins", pipeline="hilci.example:PIPELINE",
                 env={"PYTHONPATH": f"{fake}:{REPO}"})
    assert bare.returncode == 0, bare.stderr
    keys = {r["id"]: r["key"] for r in json.loads(normal.stdout)["stages"]}
    assert keys == {r["id"]: r["key"] for r in json.loads(bare.stdout)["stages"]}
    assert {"train", "quantize", "convert-orin-nx", "convert-agx-orin"} <= set(keys) and all(
        keys[k] for k in ("train", "quantize", "convert-orin-nx"))


def test_the_jenkins_plan_step_and_hilci_stage_in_pods_share_the_store(project: Path, tmp_path: Path):
    """Pods run `hilci stage`; the plan skips what passed and writes its JUnit; a later pod restores the
    outputs of a skipped stage it needs."""
    env = {"HILCI_STORE": (tmp_path / "shared").as_uri(), "HILCI_COMMIT": "c0ffee0000001111", "HILCI_BUILD": "#41"}
    for name in ("gen", "check"):
        proc = hilci(project, "stage", name, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    shutil.rmtree(project / "out")
    shutil.rmtree(project / "reports")
    env["HILCI_BUILD"] = "#42"
    proc = hilci(project, "plan", "--json", "--jenkins", "--output", "reports/plan.json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["gen", "check"]
    plan = json.loads((project / "reports/plan.json").read_text())
    assert [(s["id"], s["decision"]) for s in plan["stages"]] == [("gen", "cached"), ("check", "cached"),
                                                                 ("final", "run")]
    assert 'value="cached from c0ffee000000 (#41)"' in (project / "reports/junit/gen.xml").read_text()
    # a pod for `final` (which needs check, which needs gen): the outputs come back from the store
    before = len(runs(project))
    (project / "hilci.yaml").write_text(GOOD.replace("check:\n", "check:\n  value: 0.9\n"))
    proc = hilci(project, "stage", "check", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "restored the outputs of gen" in proc.stdout
    assert (project / "out/gen/a.txt").read_text() == "input v1\ngen says hi\n"
    assert runs(project)[before:] == ["check"]
    proc = hilci(project, "stage", "check", env=env)
    assert proc.returncode == 0 and "cached from c0ffee000000 (#42)" in proc.stdout
    assert runs(project)[before:] == ["check"]


PLAN_HARNESS = """
Binding binding = new Binding()
List calls = []
binding.setVariable('sh', { Map m -> calls << m.script; return m.returnStdout ? 'train\\nconvert-orin-nx\\n' : 0 })
binding.setVariable('writeFile', { Map m -> calls << "writeFile:${m.file}".toString() })
binding.setVariable('catchError', { Map m, Closure body -> body() })  // the plan's steps run inside it
binding.setVariable('pipeline', { Closure body -> })
Script script = new GroovyShell(binding).parse(new File(args[0]))
script.run()
script.invokeMethod('hilciPlan', [] as Object[])
println 'CALLS ' + calls.join(' | ')
for (probe in [['train', ''], ['quantize', ''], ['convert', 'orin-nx'], ['convert', 'agx-orin']]) {
    Object[] a = probe[1] ? [probe[0], probe[1]] as Object[] : [probe[0]] as Object[]
    println "PROBE ${probe[0]} ${probe[1]} cached=${script.invokeMethod('isCached', a)} passed=${script.invokeMethod('hasPassed', a)}"
}
"""


def test_the_rendered_plan_step_marks_what_the_plan_printed_as_cached_and_passed(tmp_path: Path):
    """The committed Jenkinsfile's hilciPlan, run by Groovy with `sh` answering two cached ids."""
    import os
    import subprocess

    groovy = shutil.which("groovy")
    if groovy is None:
        pytest.fail("Debian's groovy is not installed: apt-get install groovy", pytrace=False)
    harness = tmp_path / "plan_harness.groovy"
    harness.write_text(PLAN_HARNESS)
    env = dict(os.environ, JAVA_HOME=os.environ.get("JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64"))
    proc = subprocess.run([groovy, str(harness), str(REPO / "Jenkinsfile")], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hilci plan --json --jenkins --output reports/plan.json" in proc.stdout
    probes = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("PROBE")]
    assert probes == [["train", "cached=true", "passed=true"], ["quantize", "cached=false", "passed=false"],
                      ["convert", "orin-nx", "cached=true", "passed=true"],
                      ["convert", "agx-orin", "cached=false", "passed=false"]]
    text = (REPO / "Jenkinsfile").read_text()
    quantize = text.split("stage('quantize') {")[1].split("steps {")[0]
    assert "expression { !isCached('quantize') && hasPassed('train') }" in quantize
    # a board's branch decides before its rig lock and its pod (onBoard) whether its stages are all cached
    cells = text.split("stage('jetson: convert, hil') {")[1].split("onBoard(board)")[0]
    assert "!(isCached('convert', board) && isCached('hil', board))" in cells
