"""Keys that see what runs (#16, item 3): changing one kind of input reruns exactly the stages that read it.

Each case mutates a scratch copy of this repository and compares the reference pipeline's keys before and after,
as `hilci plan` computes them: the local plan (every stage here, on the sim rig) and the Jenkins plan (each stage
in its pod, convert once per board; hil on a real rig is never cached, so it has no key to compare).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hilci.example import PIPELINE
from hilci.stage.run import load_config
from hilci.store.keys import cacheable_on, key_for
from tests.conftest import REPO

SIM = "hil_tests/rigs/sim.yaml"
EVERY = {"build", "train", "quantize", "convert", "hil",
         "J:build", "J:train", "J:quantize", "J:convert-orin-nx", "J:convert-agx-orin"}
JENKINS_MODEL = {"J:train", "J:quantize", "J:convert-orin-nx", "J:convert-agx-orin"}


# what the keys of the reference pipeline can read (no .git: the build stage's scratch copy has none)
COPIED = ("ci", "conversion", "tests", "hil_tests", "podtemplates", "images", "deploy", "dags", "docs", "benchmarks",
          ".ci", "Jenkinsfile", "Makefile", "tox.ini", "constraints.txt", "setup.py", "pyproject.toml", "hilci.yaml",
          "README.md")


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> Path:
    """This repository's files, copied once; each test works on its own copy of this copy."""
    base = tmp_path_factory.mktemp("tracked") / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "reports", "artifacts")
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, base / name, symlinks=True, ignore=ignore)
        elif src.is_file():
            base.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, base / name)
    plan_keys(base)  # digests are cached by content: the copies below cost only what a case changes
    return base


@pytest.fixture
def scratch(tracked: Path, tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(tracked, root, symlinks=True)
    return root


def plan_keys(root: Path) -> dict[str, str]:
    """Every cacheable stage's key: local (sim rig, installed tools) and Jenkins (each pod, per board)."""
    config = load_config(root, PIPELINE).plain()  # as `hilci plan` reads it: each section with its defaults
    keys: dict[str, str] = {}
    local, pod = {}, {}
    for stage in PIPELINE.stages:
        if not stage.cacheable:
            continue
        keys[stage.name] = key_for(root, PIPELINE, config, stage, root / SIM, "local", local, place="local")[0]
        for board, rig in ([(b.name, root / b.rig) for b in PIPELINE.boards] if stage.matrix else [("local", None)]):
            if not cacheable_on(stage, rig):
                continue
            ident = f"J:{stage.name}-{board}" if stage.matrix else f"J:{stage.name}"
            keys[ident] = key_for(root, PIPELINE, config, stage, rig, board, pod, place="pod")[0]
    return keys


def edit(root: Path, path: str, old: str, new: str) -> None:
    file = root / path
    text = file.read_text()
    assert old in text, f"{path} no longer holds {old!r}: update this test"
    file.write_text(text.replace(old, new, 1))


def append(root: Path, path: str, text: str) -> None:
    with open(root / path, "a") as fh:
        fh.write(text)


# (id, mutation, the stages that must rerun: exactly these)
CASES = [
    ("jenkinsfile", lambda r: append(r, "Jenkinsfile", "\n// one more line\n"), {"build", "J:build"}),
    ("jenkinsfile-harness", lambda r: append(r, "tests/jenkinsfile_harness.groovy", "\n// one more line\n"),
     {"build", "J:build"}),
    # pytest reads its options from pyproject.toml in the build's tests and in hil's session
    ("pytest-options", lambda r: edit(r, "pyproject.toml", 'addopts = "-p no:cacheprovider"',
                                      'addopts = "-p no:cacheprovider -ra"'), {"build", "hil", "J:build"}),
    # a comment: stages that key Python by tokens and YAML by content stay; build lints and reads text
    ("gpu-template-comment", lambda r: append(r, "podtemplates/gpu.yaml", "# a comment\n"), {"build", "J:build"}),
    ("gpu-template-content", lambda r: edit(r, "podtemplates/gpu.yaml", "sizeLimit: 2Gi", "sizeLimit: 3Gi"),
     {"build", "J:build"} | JENKINS_MODEL),  # the local run never runs in that pod
    ("conversion-comment", lambda r: edit(r, "conversion/cli.py", "\n", "\n# a comment\n"), {"build", "J:build"}),
    ("conversion-code", lambda r: append(r, "conversion/cli.py", "\nHILCI_TEST_CONSTANT = 1\n"),
     EVERY),
    ("other-board-rig", lambda r: edit(r, "hil_tests/rigs/agx-orin.yaml", "budgets:", "budgets:  # tightened\n"
                                       "  extra_ms: 1.0"), {"build", "J:build"}),
    ("sim-rig-budget", lambda r: edit(r, SIM, "budgets:", "budgets:\n  extra_ms: 1.0"), {"build", "hil", "J:build"}),
    ("sim-rig-comment", lambda r: append(r, SIM, "# a comment\n"), {"build", "J:build"}),
    ("convert-budget", lambda r: edit(r, "hilci.yaml", "p99_ms: 10.0", "p99_ms: 11.0"),
     {"build", "J:build", "convert", "hil", "J:convert-orin-nx", "J:convert-agx-orin"}),
    # the lock: pods install from it; a local run keys what is installed, so only the pods' keys move
    ("lock-onnxruntime", lambda r: edit(r, "constraints.txt", "onnxruntime==", "onnxruntime==9"),
     {"build", "J:build", "J:quantize", "J:convert-orin-nx", "J:convert-agx-orin"}),
    ("gpu-image-python", lambda r: edit(r, "images/gpu/Dockerfile", 'dev.hilci.python="3.12"',
                                        'dev.hilci.python="3.13"'), {"build", "J:build"} | JENKINS_MODEL),
]


@pytest.mark.parametrize("name,mutate,expected", CASES, ids=[c[0] for c in CASES])
def test_an_input_reruns_exactly_its_readers(scratch: Path, name, mutate, expected) -> None:
    before = plan_keys(scratch)
    assert set(before) == EVERY
    mutate(scratch)
    after = plan_keys(scratch)
    assert {s for s in before if before[s] != after[s]} == expected


def test_host_lateness_reruns_only_hil(scratch: Path, monkeypatch) -> None:
    monkeypatch.delenv("HILCI_HOST_LATE_MS", raising=False)
    before = plan_keys(scratch)
    monkeypatch.setenv("HILCI_HOST_LATE_MS", "5")
    after = plan_keys(scratch)
    # the pods' environment is their template's, not the plan pod's: only the local hil reads this one
    assert {s for s in before if before[s] != after[s]} == {"hil"}


def test_pytest_addopts_from_the_environment_reruns_the_pytest_stages(scratch: Path, monkeypatch) -> None:
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    before = plan_keys(scratch)
    monkeypatch.setenv("PYTEST_ADDOPTS", "-x")
    after = plan_keys(scratch)
    assert {s for s in before if before[s] != after[s]} == {"build", "hil"}


@pytest.mark.pipeline  # two `hilci plan` subprocesses
def test_hilci_plan_computes_the_keys_this_table_compares(scratch: Path):
    """The keys above are `hilci plan`'s: the local plan's and the Jenkins plan's, stage by stage."""
    import json

    from tests.conftest import hilci

    keys = plan_keys(scratch)
    local = hilci(scratch, "plan", "--json", pipeline="hilci.example:PIPELINE")
    jenkins = hilci(scratch, "plan", "--json", "--jenkins", pipeline="hilci.example:PIPELINE")
    assert local.returncode == 0 and jenkins.returncode == 0, local.stderr + jenkins.stderr
    planned = {r["id"]: r["key"] for r in json.loads(local.stdout)["stages"] if r["key"]}
    planned |= {f"J:{r['id']}": r["key"] for r in json.loads(jenkins.stdout)["stages"] if r["key"]}
    assert planned == keys
