"""Small pipelines for the runner's tests and benchmarks: every stage runs `behave`, driven by hilci.yaml."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hilci.pipeline.model import Board, Pipeline, Stage
from hilci.results.measurements import measure


def behave(ctx) -> None:
    """Do what the stage's config says: write files, wait for a file, sleep, fail a gate, crash, or die without
    JUnit."""
    cfg = ctx.config
    with open(ctx.root / "runs.log", "a") as fh:  # outside every output: counts real executions
        fh.write(f"{ctx.stage.name} {os.getpid()} store-keys={'AWS_SECRET_ACCESS_KEY' in os.environ}\n")
    for rel, text in (cfg.get("write") or {}).items():
        src = cfg.get("copy_from")
        body = (ctx.root / src).read_text() if src else ""
        out = ctx.root / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        poison = os.environ.get("FIXTURE_POISON")  # the benchmark's forged build: bytes its key does not see
        out.write_text(body + (f"{poison}\n" if poison else text))
    if cfg.get("wait_for"):  # another stage's file: proves the two run at once (a line would never see it)
        deadline = time.monotonic() + float(cfg.get("wait_s", 60))
        while not (ctx.root / cfg["wait_for"]).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not (ctx.root / cfg["wait_for"]).exists():
            cfg = {**cfg, "value": 0.0}  # the gate below fails: it never came
    if cfg.get("sleep"):
        print("sleeping", flush=True)
        (ctx.root / f"{ctx.stage.name}.pid").write_text(str(os.getpid()))
        time.sleep(float(cfg["sleep"]))
    if cfg.get("hard_exit") is not None:
        print("about to die without JUnit", flush=True)
        os._exit(int(cfg["hard_exit"]))
    if cfg.get("infra"):  # a failure that was the rig's, as a HIL suite's JUnit says it: `hilci stage` exits 3
        part = ctx.root / "out" / f"{ctx.stage.name}-rig.xml"
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_text(INFRA_JUNIT.replace("MESSAGE", str(cfg["infra"])))
        ctx.junit_files.append(part)
    if cfg.get("crash"):
        raise RuntimeError("boom in stage body")
    value = float(cfg.get("value", 1.0))
    ctx.gate(f"{ctx.stage.name} gate", measure(f"{ctx.stage.name}.score", value, "pt", low=0.5,
                                                nominal="0.5 pt floor"))


INFRA_JUNIT = """<testsuites><testsuite name="pytest" tests="1" errors="1"><testcase classname="hil.test_x" name="test_x">
<properties><property name="hil.failure_class" value="infrastructure"/></properties>
<error type="infrastructure" message="MESSAGE">MESSAGE</error></testcase></testsuite></testsuites>"""


def stage(name: str, **kw) -> Stage:
    return Stage(name=name, pod="cpu", does=f"test stage {name}", entry="tests.fixture_pipelines:behave", **kw)


GOOD = """
gen:
  copy_from: src/input.txt
  write: {out/gen/a.txt: "gen says hi\\n"}
check:
  write: {out/check/ok.txt: "checked\\n"}
final: {}
"""  # the hilci.yaml of a project where every stage of PIPELINE passes

PIPELINE = Pipeline(stages=(
    stage("gen", inputs=("src/input.txt",), outputs=("out/gen",)),
    stage("check", inputs=("out/gen/*.txt",), outputs=("out/check",), needs=("gen",)),
    stage("final", needs=("check",), cacheable=False),
))

STORE_USER = Pipeline(stages=(stage("gen", inputs=("src/input.txt",), outputs=("out/gen",)),
                              stage("final", needs=("gen",), cacheable=False, uses_store=True)))

TIMEOUT = Pipeline(stages=(stage("slow", cacheable=False, timeout_s=1.0),
                           stage("after", cacheable=False, needs=("slow",))))

GRAPH = Pipeline(stages=(
    stage("slow", cacheable=False),
    stage("quick", cacheable=False),
    stage("after", cacheable=False, needs=("quick",)),
    stage("gather", cacheable=False, gathers=True),
))  # slow and quick are independent, after needs quick, gather waits for all

WEIGHTED = Pipeline(stages=(
    stage("heavy", cacheable=False, jobs="all"),
    stage("light", outputs=("out/light",)),
    stage("after", cacheable=False, needs=("light",)),
))  # heavy takes every job of --jobs; light and after wait for it, unless light is restored from the cache

BAD_WEIGHT = Pipeline(stages=(stage("heavy", cacheable=False, jobs=0),))

NOOP = Pipeline(stages=tuple(
    Stage(name=f"noop{i:02d}", pod="cpu", does="nothing", entry="tests.fixture_pipelines:noop", cacheable=False)
    for i in range(50)))


def noop(ctx) -> None:
    """A stage body that does nothing: measures the runner's own overhead."""


def make_project(root: Path, config: str) -> Path:
    """A project folder the runner can work in: a pod template, hilci.yaml and one input file."""
    (root / "podtemplates").mkdir(parents=True, exist_ok=True)
    (root / "podtemplates" / "cpu.yaml").write_text("apiVersion: v1\nkind: Pod\n")
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "input.txt").write_text("input v1\n")
    (root / "hilci.yaml").write_text(config)
    return root

RIGGED = Pipeline(
    stages=(Stage(name="probe", pod="jetson", does="a HIL-like stage", entry="tests.fixture_pipelines:behave",
                  matrix=True, rerun_on_real_rig=True),),
    boards=(Board(name="b", rig="rig.yaml"),),
)

CYCLIC = Pipeline(stages=(stage("a", needs=("b",)), stage("b", needs=("a",))))

SHAPED = Pipeline(stages=(
    stage("build", inputs=("src/*.txt", "hil/*.txt"), outputs=("out/build",)),
    stage("train", inputs=("src/*.txt",), outputs=("out/train",)),
    stage("quantize", inputs=("out/train/*",), outputs=("out/quantize",), needs=("train",)),
    stage("convert", inputs=("out/quantize/*",), outputs=("out/convert",), needs=("quantize",)),
    stage("hil", inputs=("hil/*.txt", "out/convert/*"), outputs=("out/hil",), needs=("convert",)),
    stage("report", cacheable=False, gathers=True),
))  # the reference pipeline's graph in miniature (benchmarks/pipeline.py --quick): hil/ is a HIL suite


def shaped_config(unit_s: float) -> str:
    """SHAPED's hilci.yaml: each stage sleeps a share of the real pipeline's time (build the longest)."""
    shares = {"build": 4, "train": 2, "quantize": 2, "convert": 1, "hil": 1, "report": 0.2}
    return "".join(f"{name}: {{sleep: {share * unit_s:g}, write: {{out/{name}/done.txt: done}}}}\n"
                   if name != "report" else f"report: {{sleep: {share * unit_s:g}}}\n"
                   for name, share in shares.items())
