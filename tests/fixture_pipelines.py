"""Small pipelines for the runner's tests and benchmarks: every stage runs `behave`, driven by hilci.yaml."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hilci.pipeline.model import Board, Pipeline, Stage
from hilci.results.measurements import measure


def behave(ctx) -> None:
    """Do what the stage's config says: write files, sleep, fail a gate, crash, or die without JUnit."""
    cfg = ctx.config
    with open(ctx.root / "runs.log", "a") as fh:  # outside every output: counts real executions
        fh.write(f"{ctx.stage.name} {os.getpid()}\n")
    for rel, text in (cfg.get("write") or {}).items():
        src = cfg.get("copy_from")
        body = (ctx.root / src).read_text() if src else ""
        out = ctx.root / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(body + text)
    if cfg.get("sleep"):
        print("sleeping", flush=True)
        (ctx.root / f"{ctx.stage.name}.pid").write_text(str(os.getpid()))
        time.sleep(float(cfg["sleep"]))
    if cfg.get("hard_exit") is not None:
        print("about to die without JUnit", flush=True)
        os._exit(int(cfg["hard_exit"]))
    if cfg.get("crash"):
        raise RuntimeError("boom in stage body")
    value = float(cfg.get("value", 1.0))
    ctx.gate(f"{ctx.stage.name} gate", measure(f"{ctx.stage.name}.score", value, "pt", low=0.5,
                                                nominal="0.5 pt floor"))


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

TIMEOUT = Pipeline(stages=(stage("slow", cacheable=False, timeout_s=1.0), stage("after", cacheable=False)))

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
