"""The Jenkinsfile: rendered from the one definition, committed as rendered, parsed by Groovy, checked by ours."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hilci import cli
from hilci.example import PIPELINE
from hilci.jenkins.check import JenkinsfileError, check, parse
from hilci.jenkins.jenkinsfile import definition_file, render
from hilci.pipeline.model import Board, Pipeline, Stage

ROOT = Path(__file__).resolve().parents[1]
HARNESS = Path(__file__).with_name("jenkinsfile_harness.groovy")
JAVA_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"


def matrix_pipeline() -> Pipeline:
    """The full shape of DESIGN.md's table: GPU stages, a Jetson matrix over two boards, a gathering report."""
    base = {s.name: s for s in PIPELINE.stages}
    stages = [
        Stage(name="build", pod="cpu", does="wheel", entry="hilci.builtin.stages:build", outputs=("dist",), archive=("dist/*.whl",)),
        Stage(name="train", pod="gpu", does="fp32", entry="hilci.conversion.stages:train", outputs=("artifacts/train",),
              needs=("build",)),
        Stage(name="quantize", pod="gpu", does="qat", entry="hilci.conversion.stages:quantize",
              outputs=("artifacts/quantize",), needs=("train",), archive=("artifacts/quantize/*.onnx",)),
        Stage(name="convert", pod="jetson", does="engine", entry="hilci.conversion.stages:convert", matrix=True,
              outputs=("artifacts/convert",), needs=("quantize",), archive=("artifacts/convert/**",)),
        Stage(name="hil", pod="jetson", does="hil", entry="hilci.builtin.hil:run", matrix=True, needs=("convert",)),
        Stage(name="report", pod="cpu", does="report", entry="hilci.builtin.stages:report", gathers=True,
              archive=("reports/**",)),
    ]
    boards = PIPELINE.boards + tuple(Board(n, "hil_tests/rigs/x.yaml") for n in ("agx-orin",)
                                     if n not in {b.name for b in PIPELINE.boards})
    assert base  # the real definition exists; this one adds what other issues are still adding
    return Pipeline(stages=tuple(stages), boards=boards)


@pytest.fixture(scope="module")
def matrix_text() -> str:
    return render(matrix_pipeline())


def test_committed_jenkinsfile_equals_the_rendering():
    committed = (ROOT / "Jenkinsfile").read_text()
    assert committed == render(PIPELINE, "hilci.example:PIPELINE", "ci/example.py"), "Jenkinsfile is stale: run `hilci jenkinsfile --write`"


def test_committed_jenkinsfile_passes_our_checker():
    check((ROOT / "Jenkinsfile").read_text(), PIPELINE, ROOT)


def test_matrix_rendering_has_the_declarative_shape(matrix_text):
    p = matrix_pipeline()
    check(matrix_text, p, ROOT)
    assert "agent none" in matrix_text.split("stages {")[0]
    assert matrix_text.count("retries 2") == 6  # plan, build, train, quantize, one Jetson pod per board, report
    # podRetention onFailure() keeps a pod only when the pod failed, not the stage: diagnostics are archived
    assert "podRetention" not in matrix_text
    assert matrix_text.count("unsuccessful {") == 6 and "diagnostics(\"hil-${BOARD}\")" in matrix_text
    # "Restart from stage" would start with an empty `passed` map and skip everything: disabled, with the reason
    assert "disableRestartFromStage()" in matrix_text.split("stages {")[0]
    # the matrix decides before its rig lock, so a skipped board does not wait for the lock
    matrix_when = matrix_text.split("matrix {")[1].split("agent {")[0]
    assert "beforeAgent true" in matrix_when and "beforeOptions true" in matrix_when
    assert "expression { boardSelected(env.BOARD) && " in matrix_when
    assert "&& hasPassed('quantize') }" in matrix_when
    assert "string(name: 'BOARDS', defaultValue: 'all'" in matrix_text.split("stages {")[0]
    assert 'yamlFile "podtemplates/jetson-${BOARD}.yaml"' in matrix_text
    assert "values " + ", ".join(f"'{b.name}'" for b in p.boards) in matrix_text
    assert 'lock(resource: "rig-${BOARD}")' in matrix_text
    assert "disableConcurrentBuilds(abortPrevious: true)" in matrix_text and "buildDiscarder(" in matrix_text
    # the plan publishes the cached stages' JUnit; the pipeline's post publishes a report it had to run itself
    assert matrix_text.count("keepProperties: true") == 8
    # a stage that failed before writing its JUnit: junit must not throw (Declarative would skip the report)
    assert matrix_text.count("allowEmptyResults: true, keepProperties: true") == 8
    assert 'junit testResults: "reports/junit/hil-${BOARD}.xml", allowEmptyResults: true, keepProperties: true' in matrix_text
    assert "archiveArtifacts artifacts: 'artifacts/quantize/*.onnx', fingerprint: true" in matrix_text
    # the ONNX goes from the GPU pod to the Jetson pods by stash; engines stay on the device
    assert "stash name: 'outputs-quantize', includes: 'artifacts/quantize/**'" in matrix_text
    assert "'outputs-quantize'])\n" in matrix_text.split("stage('convert')")[1].split("hilciStage")[0]
    assert "outputs-convert" not in matrix_text
    # hil on a board runs only when convert passed on that same board
    assert "hasPassed('convert', env.BOARD)" in matrix_text.split("stage('hil')")[1]
    # the gathering stage runs after failures too (no when) and unstashes every JUnit
    report = matrix_text.split("stage('report')")[1]
    assert "when" not in report and "'junit-hil-agx-orin'" in report


def test_stage_order_and_lock_come_from_the_definition(matrix_text):
    tree = parse(matrix_text)
    names = [i.strings()[0] for i in tree.walk() if i.name == "stage" and i.block is not None]
    assert names == ["plan", "build", "train", "quantize", "jetson: convert, hil", "convert", "hil", "report"]


def _groovy_run(*files: Path, run_file: Path, graph_file: Path | None = None) -> str:
    groovy = shutil.which("groovy")
    if groovy is None:
        pytest.fail("Debian's groovy (2.4.21) is not installed: `apt-get install groovy` "
                    "(the Makefile's `deps` target and .ci/run install it); the Jenkinsfile cannot be parsed")
    env = dict(os.environ, JAVA_HOME=os.environ.get("JAVA_HOME", JAVA_HOME))
    if graph_file is not None:
        env["HILCI_GRAPH_FILE"] = str(graph_file)
    proc = subprocess.run([groovy, str(HARNESS), str(run_file), *map(str, files)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def harness(tmp_path_factory, matrix_text) -> tuple[str, Path, Path]:
    """One JVM for every Groovy check: parse, the exit-code mapping, the pipeline run as Declarative runs it."""
    tmp_path = tmp_path_factory.mktemp("groovy")
    matrix_file = tmp_path / "Jenkinsfile.matrix"
    matrix_file.write_text(matrix_text)
    broken = tmp_path / "Jenkinsfile.broken"
    broken.write_text(matrix_text.replace("        stage('train') {\n", "        stage('train') {{\n", 1))
    return (_groovy_run(ROOT / "Jenkinsfile", matrix_file, broken, run_file=matrix_file,
                        graph_file=ROOT / "Jenkinsfile"), matrix_file, broken)


def test_groovy_parses_renderings_and_runs_the_exit_code_mapping(harness):
    """Groovy compiles both renderings, rejects a broken file, and runs hilciStage per exit code."""
    out, matrix_file, broken = harness
    assert f"PARSE OK {ROOT / 'Jenkinsfile'}" in out
    assert f"PARSE OK {matrix_file}" in out
    assert f"PARSE ERROR {broken}" in out
    runs = [json.loads(line[4:]) for line in out.splitlines() if line.startswith("RUN ")]
    by = {(r["rc"], r["stage"]): r for r in runs}
    ok, gate, error, missing = by[0, "train"], by[1, "train"], by[2, "train"], by[127, "train"]
    assert ok["passed"] and not any(c.startswith(("unstable", "catchError")) for c in ok["calls"])
    assert not gate["passed"] and "unstable:hilci stage train: a gate failed (exit 1)" in gate["calls"]
    assert not any(c.startswith("catchError") for c in gate["calls"])
    for run in (error, missing):
        assert not run["passed"]
        assert any(c.startswith("catchError:FAILURE/FAILURE:") for c in run["calls"])
    assert "timeout:60 SECONDS" in ok["calls"]
    hil = by[1, "hil"]
    rig = next(b.rig for b in matrix_pipeline().boards if b.name == "orin-nx")
    # the rig YAML the rig device plugin mounted ($HILCI_RIG), else the repository's
    assert f'sh:hilci stage hil --board orin-nx --rig "${{HILCI_RIG:-{rig}}}"' in hil["calls"]
    assert by[0, "hil"]["passed"] and by[0, "hil"]["key"] == "hil-orin-nx"
    infra = by[3, "hil"]  # only the rig failed: the stage not built, the build unstable, never a code FAILURE
    assert not infra["passed"]
    assert any(c.startswith("catchError:UNSTABLE/NOT_BUILT:") and "only infrastructure failed (exit 3)" in c
               for c in infra["calls"]), infra["calls"]
    # a missing stash (its stage never ran) is reported, not fatal
    assert any(c.startswith("echo:no stash 'missing-x'") for c in ok["calls"])


def _declarative_runs(out: str) -> dict[str, dict]:
    runs = [json.loads(line[5:]) for line in out.splitlines() if line.startswith("DECL ")]
    return {json.dumps(r["fault"], sort_keys=True): r for r in runs}


def test_the_report_runs_after_any_failure_or_thrown_error(harness):
    """The pipeline run as Declarative runs it (an error thrown out of a stage skips every later stage): whatever
    fails, the report runs, and the build result keeps the exit-code mapping."""
    runs = _declarative_runs(harness[0])
    assert len(runs) == 11, harness[0][-3000:]

    def run(**fault) -> dict:
        return runs[json.dumps(fault, sort_keys=True)]

    for key, r in runs.items():
        reports = [s for s in r["ran"] if s.startswith("report@")]
        assert len(reports) == 1, (key, r)  # once: in its stage, or in the pipeline's post
        assert any(p.startswith("reports/junit/report.xml@") for p in r["published"]), (key, r)
    assert run()["result"] == "SUCCESS" and run()["ran"][-1] == "report@report"
    assert run(rc={"train": 1})["result"] == "UNSTABLE"
    assert run(rc={"train": 2})["result"] == "FAILURE"
    # thrown inside hilciStage (the install step, the timeout) or by junit finding no XML: caught, the stage and
    # the build FAILURE, later stages skipped by their own `when` (what they need did not pass), the report in its
    # own stage
    for fault in ({"pipFails": "build"}, {"timeoutIn": "train"}, {"noXml": "quantize", "rc": {"quantize": 2}}):
        r = run(**fault)
        assert r["result"] == "FAILURE" and r["threw"] == [], r
        assert "report@report" in r["ran"] and not any("earlier failure" in s for s in r["skipped"]), r
    assert run(pipFails="build")["ran"] == ["report@report"]
    # a plan that throws skips nothing: every stage runs as a miss
    assert "hil-agx-orin@hil" in run(pipFails="plan")["ran"]
    # thrown where no step can catch it (a pod that still fails after its attempts, a lost agent in post): the
    # later stages are skipped and the pipeline's post runs the report in a pod of its own
    for fault in ({"podFails": "train"}, {"podFails": "jetson"}, {"agentLost": "quantize"}, {"podFails": "report"}):
        r = run(**fault)
        assert r["result"] == "FAILURE" and r["threw"], r
        assert "report@post" in r["ran"], r
    assert "report: earlier failure" in run(podFails="train")["skipped"]  # Declarative's own skip, caught up on


def test_checker_wants_the_report_safe_from_thrown_errors(matrix_text):
    p = matrix_pipeline()
    unguarded = _broken(matrix_text, "    catchError(buildResult: 'FAILURE', stageResult: 'FAILURE') {\n"
                                     "        timeout(", "    if (true) {\n        timeout(")
    with pytest.raises(JenkinsfileError, match="hilciStage: 'timeout' outside catchError"):
        check(unguarded, p, ROOT)
    no_post = matrix_text[:matrix_text.rindex("    post {")] + "}\n"
    with pytest.raises(JenkinsfileError, match=r"post \{ always \{ ... \} \} does not run hilciStage\('report'\)"):
        check(no_post, p, ROOT)


def _broken(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize("old, new, message, needle", [
    ("yamlFile 'podtemplates/gpu.yaml'", "yamlFile 'podtemplates/gpux.yaml'",
     "yamlFile 'podtemplates/gpux.yaml' does not exist", "gpux"),
    ("                    retries 2\n", "", "lacks 'retries'", "kubernetes {"),
    ("junit testResults: 'reports/junit/train.xml', allowEmptyResults: true, keepProperties: true",
     "junit testResults: 'reports/junit/train.xml', allowEmptyResults: true", "junit needs keepProperties: true",
     "junit testResults: 'reports/junit/train.xml'"),
    ("junit testResults: 'reports/junit/train.xml', allowEmptyResults: true, keepProperties: true",
     "junit testResults: 'reports/junit/train.xml', keepProperties: true", "junit needs allowEmptyResults: true",
     "junit testResults: 'reports/junit/train.xml'"),
    ("hilciStage('quantize', 1800)", "sh 'make quantize'", "does not run hilciStage('quantize'",
     "steps {\n                unstashAll(['outputs-build', 'outputs-train'])\n                sh"),
])
def test_checker_names_the_line(matrix_text, old, new, message, needle):
    text = _broken(matrix_text, old, new)
    with pytest.raises(JenkinsfileError) as err:
        check(text, matrix_pipeline(), ROOT)
    assert message in str(err.value)
    assert str(err.value).startswith(f"Jenkinsfile:{_line_of(text, needle)}:"), str(err.value)


def test_checker_names_an_unclosed_brace_and_a_stray_one(matrix_text):
    text = _broken(matrix_text, "        stage('train') {\n", "        stage('train') {{\n")
    train_line = _line_of(text, "stage('train') {{")
    with pytest.raises(JenkinsfileError, match=rf"^Jenkinsfile:\d+: unbalanced braces: .* of line {train_line} "):
        check(text, matrix_pipeline(), ROOT)
    text = _broken(matrix_text, "    agent none\n", "    agent none\n    }\n")
    with pytest.raises(JenkinsfileError, match=rf"^Jenkinsfile:{_line_of(text, 'agent none') + 1}: unbalanced"):
        check(text, matrix_pipeline(), ROOT)
    with pytest.raises(JenkinsfileError, match=r"^Jenkinsfile:3: unbalanced '\{' of 'pipeline'"):
        check("// x\n\npipeline {\n    agent none\n", matrix_pipeline(), ROOT)
    with pytest.raises(JenkinsfileError, match=r"^Jenkinsfile:2: unbalanced '\)'"):
        check("pipeline {\n    agent none)\n}\n", matrix_pipeline(), ROOT)


def test_checker_wants_every_stage_and_agent_none(matrix_text):
    p = matrix_pipeline()
    extra = Pipeline(stages=p.stages[:-1] + (Stage(name="deploy", pod="cpu", does="x", entry="a:b"),) + p.stages[-1:],
                     boards=p.boards)
    with pytest.raises(JenkinsfileError, match="pipeline stage 'deploy' does not appear"):
        check(matrix_text, extra, ROOT)
    with pytest.raises(JenkinsfileError, match="must say 'agent none'"):
        check(_broken(matrix_text, "    agent none\n", "    agent any\n"), p, ROOT)


def test_cli_check_passes_on_the_committed_file_and_fails_on_drift(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert cli.main(["jenkinsfile", "--check"]) == 0
    assert "Jenkinsfile: ok" in capsys.readouterr().out
    stale = tmp_path / "Jenkinsfile.stale"
    stale.write_text((ROOT / "Jenkinsfile").read_text().replace("retries 2", "retries 3", 1))
    assert cli.main(["jenkinsfile", "--check", "--file", str(stale)]) == 1
    assert "differs from the rendering" in capsys.readouterr().err
    bad = tmp_path / "Jenkinsfile.bad"
    bad.write_text((ROOT / "Jenkinsfile").read_text().replace("    stages {\n", "    stagez {\n", 1))
    assert cli.main(["jenkinsfile", "--check", "--file", str(bad)]) == 1
    assert "the pipeline has no 'stages' block" in capsys.readouterr().err


def test_the_rendering_names_the_definition_file_whichever_copy_of_it_was_imported(tmp_path, monkeypatch, capsys):
    """A scratch copy of the repository (a clone in a temp folder) checked with the hilci imported from another
    checkout (this one, installed editable) renders the same header: the definition file is named by its place in
    the project, not by where Python happened to import it from (it said `hilci.example` there, so --check
    reported drift)."""
    copy = tmp_path / "copy"
    for rel in ("Jenkinsfile", "hilci.yaml", "pyproject.toml", "ci/example.py"):
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, copy / rel)
    shutil.copytree(ROOT / "podtemplates", copy / "podtemplates")
    assert definition_file("hilci.example:PIPELINE", copy) == "ci/example.py"
    assert definition_file("hilci.example:PIPELINE", tmp_path / "elsewhere") == "hilci.example"  # not in it
    monkeypatch.chdir(copy)
    assert cli.main(["jenkinsfile", "--check"]) == 0, capsys.readouterr().err
    assert "Jenkinsfile: ok" in capsys.readouterr().out


# --- the graph: parallel branches following the definition's needs -----------------------------------------------

SCRIPTED_CELL = re.compile(r"-\$\{\w+\}$")  # a scripted per-board stage: "convert-${board}"


def _waits_for(tree) -> dict[str, set[str]]:
    """Each leaf stage of a parsed Jenkinsfile: the leaf stages that must have ended before it starts, read from
    the structure (a sequence waits for what came before; parallel branches, matrix cells and the cells of a
    scripted per-board `parallel` for none of each other; a scripted cell's stages in sequence)."""
    waits: dict[str, set[str]] = {}

    def sequence(items, before: set[str]) -> set[str]:
        for item in items:
            if item.name == "stage" and item.block is not None:
                before = one(item, before)
        return before

    def one(stage, before: set[str]) -> set[str]:
        name = stage.strings()[0]
        if stage.children("steps"):
            cells = [i for i in stage.children("steps")[0].walk() if i.name == "stage" and i.block is not None]
            if not cells:
                waits[name] = set(before)
                return before | {name}
            after = set(before)
            for cell in cells:  # in order inside one board's branch; every board's the same
                leaf = SCRIPTED_CELL.sub("", cell.strings()[0])
                waits[leaf] = set(after)
                after |= {leaf}
            return after
        after = set(before)
        for inner in stage.children("stages"):
            after = sequence(inner.block, after)
        for par in stage.children("parallel"):
            after = set().union(*(sequence([branch], before) for branch in par.block)) | before
        for mat in stage.children("matrix"):
            for inner in mat.children("stages"):
                after = sequence(inner.block, after)
        return after

    top = next(i for i in tree.block if i.name == "pipeline")
    sequence(top.children("stages")[0].block, set())
    return waits


def _has_passed(item) -> set[str]:
    """The stages a stage's `when` (or a scripted cell's `if`) asks `hasPassed` of, with the `when` of the stages
    around it (a matrix's, a scripted parallel's stage: they apply to every cell)."""
    out: set[str] = set()
    for gate in item.walk():
        if gate.name == "if" and gate.parent is item:
            out |= set(re.findall(r"hasPassed \( '([\w-]+)'", gate.text()))
    while item is not None:
        for when in item.children("when"):
            for expr in when.walk():
                out |= set(re.findall(r"hasPassed \( '([\w-]+)'", expr.text()))
        item = item.parent
    return out


def test_the_committed_jenkinsfile_follows_the_definitions_needs():
    """Parsed back, the Jenkinsfile's graph is the definition's: every stage starts after exactly the stages it
    needs (directly or not) and the plan, and its gate asks its needs; so `hil` (and `convert`) on the Jetsons do
    not wait for `build`, which runs its unit tests beside the whole model chain, and the report waits for all."""
    tree = parse((ROOT / "Jenkinsfile").read_text())
    waits = _waits_for(tree)
    leaves = {SCRIPTED_CELL.sub("", i.strings()[0]): i for i in tree.walk()
              if i.name == "stage" and i.block is not None and i.strings()
              and (i.children("steps") and not any(c.name == "stage" for c in i.children("steps")[0].walk()
                                                    if c is not i) or SCRIPTED_CELL.search(i.strings()[0]))}
    assert set(waits) == set(PIPELINE.names) | {"plan"}
    for stage in PIPELINE.stages:
        if stage.gathers:
            assert waits[stage.name] == set(PIPELINE.names) - {stage.name} | {"plan"}
            continue
        closure = {s.name for s in PIPELINE.needs_closure(stage)}
        assert waits[stage.name] == closure | {"plan"}, (stage.name, waits[stage.name])
        asked = _has_passed(leaves[stage.name])
        assert set(stage.needs) <= asked <= closure, (stage.name, asked)
    assert "build" not in waits["hil"] and "build" not in waits["convert"]  # the first HIL verdict needs no build
    pars = [i for i in tree.walk() if i.name == "parallel" and i.block is not None]  # Declarative's
    assert len(pars) == 1 and [b.strings()[0] for b in pars[0].block] == ["build", "train, quantize, convert, hil"]
    scripted = [i for i in pars[0].block[1].walk() if i.name == "parallel" and i.block is None]  # one per board
    assert [i.text() for i in scripted] == ["parallel ( cells )"]


def test_a_line_of_needs_renders_no_parallel_and_a_join_keeps_one_chain(matrix_text):
    assert "parallel {" not in matrix_text  # matrix_pipeline: train needs build, a line
    joined = Pipeline(stages=(
        Stage(name="a", pod="cpu", does="a", entry="hilci.builtin.stages:build"),
        Stage(name="b", pod="cpu", does="b", entry="hilci.builtin.stages:build"),
        Stage(name="c", pod="cpu", does="c", entry="hilci.builtin.stages:build", needs=("a", "b")),
        Stage(name="d", pod="cpu", does="d", entry="hilci.builtin.stages:build"),
    ))
    text = render(joined)
    check(text, joined, ROOT)
    waits = _waits_for(parse(text))
    assert waits["c"] >= {"a", "b"} and "d" not in waits["a"] and "a" not in waits["d"]


def test_checker_refuses_a_matrix_inside_a_parallel_branch(matrix_text):
    matrix = matrix_text[matrix_text.index("        stage('jetson: convert, hil') {"):
                         matrix_text.index("        stage('report') {")]
    moved = matrix_text.replace(matrix, "        stage('side') {\n            parallel {\n" + _indent(matrix, 8)
                                + "            }\n        }\n")
    with pytest.raises(JenkinsfileError, match="'matrix' inside a parallel branch"):
        check(moved, matrix_pipeline(), ROOT)


@pytest.mark.parametrize("old, new, message", [
    ('junit testResults: "reports/junit/hil-${board}.xml", allowEmptyResults: true, keepProperties: true',
     'junit testResults: "reports/junit/hil-${board}.xml", keepProperties: true',
     "stage 'hil': junit needs allowEmptyResults: true"),
    ('junit testResults: "reports/junit/convert-${board}.xml", allowEmptyResults: true, keepProperties: true',
     'echo "no junit"', "stage 'convert' does not publish JUnit in finally { junit ... } after its steps"),
    ("hilciStage('hil', 1200, board)", "hilciStage('hil', 1200)", "matrix stage 'hil' does not pass its board"),
    ('readTrusted("podtemplates/jetson-${board}.yaml")', 'readTrusted("podtemplates/nano-${board}.yaml")',
     "podTemplate file 'podtemplates/nano-orin-nx.yaml' does not exist"),
    ('stage("hil-${board}") {', 'stage("hill-${board}") {', "stage 'hill' is not in the pipeline definition"),
])
def test_checker_reads_the_scripted_per_board_stages(old, new, message):
    text = _broken((ROOT / "Jenkinsfile").read_text(), old, new)
    with pytest.raises(JenkinsfileError, match=re.escape(message)):
        check(text, PIPELINE, ROOT)


def _indent(block: str, n: int) -> str:
    return "".join((" " * n + line) if line.strip() else line for line in block.splitlines(keepends=True))


def _graph_runs(out: str) -> dict[str, dict]:
    runs = [json.loads(line[6:]) for line in out.splitlines() if line.startswith("GRAPH ")]
    return {json.dumps(r["fault"], sort_keys=True): r for r in runs}


def test_in_the_graph_a_failed_stage_stops_only_what_needs_it(harness):
    """The committed Jenkinsfile run as Declarative runs it: build failing (exit 2) or its pod lost stops none
    of the model chain beside it, Jetson cells included; the report runs once whatever happened."""
    runs = _graph_runs(harness[0])
    assert len(runs) == 21, harness[0][-3000:]
    for key, r in runs.items():
        assert len([s for s in r["ran"] if s.startswith("report@")]) == 1, (key, r)
    everything = runs[json.dumps({})]
    assert everything["result"] == "SUCCESS"
    assert {"build@build", "train@train", "quantize@quantize", "convert-orin-nx@convert-orin-nx",
            "hil-orin-nx@hil-orin-nx", "hil-agx-orin@hil-agx-orin"} <= set(everything["ran"])
    failed = runs[json.dumps({"rc": {"build": 2}})]
    assert failed["result"] == "FAILURE" and {"hil-orin-nx@hil-orin-nx", "hil-agx-orin@hil-agx-orin"} \
        <= set(failed["ran"]), failed  # hil did not need build
    lost = runs[json.dumps({"podFails": "build"})]
    assert {"train@train", "quantize@quantize", "hil-agx-orin@hil-agx-orin"} <= set(lost["ran"]), lost
    assert "report@post" in lost["ran"], lost


def test_in_the_graph_hil_runs_before_build_ends(harness):
    """With the parallel branches taken in the other order, the whole model chain and HIL on every board run,
    and pass, before `build` has run at all: nothing on the Jetson side asks for build."""
    r = _graph_runs(harness[0])[json.dumps({"reverse": True})]
    ran = [s.split("@")[0] for s in r["ran"]]
    assert r["result"] == "SUCCESS", r
    assert ran.index("hil-orin-nx") < ran.index("build") and ran.index("hil-agx-orin") < ran.index("build"), ran
    assert ran[-1] == "report"


def test_in_the_graph_one_board_failing_stops_no_other_board(harness):
    """Each board is its own branch: its pod lost after every attempt, its convert failing, a lost agent while it
    publishes, or its hil's timeout, fails that board (and the build), never the other board, and the report runs
    in its own stage; a board whose convert failed skips its hil."""
    runs = _graph_runs(harness[0])
    for fault in ({"podFails": "jetson-orin-nx"}, {"rc": {"convert-orin-nx": 2}}, {"agentLost": "convert-orin-nx"},
                  {"timeoutIn": "hil-orin-nx"}):
        r = runs[json.dumps(fault)]
        assert r["result"] == "FAILURE", (fault, r)
        assert {"convert-agx-orin@convert-agx-orin", "hil-agx-orin@hil-agx-orin", "report@report"} \
            <= set(r["ran"]), (fault, r)
        if fault != {"timeoutIn": "hil-orin-nx"}:
            assert not any(s.startswith("hil-orin-nx@") for s in r["ran"]), (fault, r)
    # only the rig failed on one board (exit 3): NOT_BUILT there, the build UNSTABLE, not a code failure
    infra = runs[json.dumps({"rc": {"hil-agx-orin": 3}})]
    assert infra["result"] == "UNSTABLE" and "hil-orin-nx@hil-orin-nx" in infra["ran"], infra
    # quantize failed: no board asks for its lock or a pod
    no_model = runs[json.dumps({"rc": {"quantize": 2}})]
    assert not any("jetson" in t or t.startswith("lock:") for t in no_model["trace"]), no_model
    assert "report@report" in no_model["ran"]


def test_in_the_graph_a_board_takes_its_rig_lock_then_its_pod_and_the_plan_skips_cached_cells(harness):
    """Per board: the rig lock first, then the Jetson pod, then the stages; a board whose convert and hil the plan
    found cached asks for neither (decided before the lock and the pod), and the other board runs."""
    runs = _graph_runs(harness[0])
    trace = runs[json.dumps({})]["trace"]
    for board in ("orin-nx", "agx-orin"):
        lock, pod = trace.index(f"lock:rig-{board}"), trace.index(f"pod:podtemplates/jetson-{board}.yaml")
        assert lock < pod < trace.index(f"run:convert-{board}") < trace.index(f"run:hil-{board}"), trace
    cached = runs[json.dumps({"cached": ["convert-orin-nx", "hil-orin-nx"]})]
    assert not any("orin-nx" in t and "agx" not in t for t in cached["trace"]), cached["trace"]
    assert "pod:podtemplates/jetson-agx-orin.yaml" in cached["trace"] and cached["result"] == "SUCCESS"
