"""Where a stage runs is part of its key (#16 item 3): a pod's Python, architecture and accelerator come from its
template and image without starting it; a local run's from what is installed. Tools are pinned exactly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hilci.example import PIPELINE
from hilci.stage.run import load_config
from hilci.store import place
from hilci.store.keys import key_for
from tests.conftest import REPO

CONFIG = load_config(REPO, PIPELINE).plain()
EXACT = re.compile(r"^\d+(\.\d+)*([.+-]\w+)*$")  # one version: no range operator, no comma


def parts_of(stage: str, place_: str, board: str = "local") -> dict:
    rig = REPO / "hil_tests/rigs/sim.yaml"
    return key_for(REPO, PIPELINE, CONFIG, PIPELINE.stage(stage), rig, board, {}, place=place_)[1]


def test_the_gpu_pod_is_known_from_its_template_and_image():
    where = parts_of("train", "pod")["place"]
    assert (where["image"], where["python"], where["arch"]) == ("ghcr.io/hilci/hilci-ci-gpu:cuda12.8-py3.12", "3.12",
                                                               "amd64")
    assert where["accelerator"] == {"kind": "nvidia", "gpus": 1, "runtime_class": "nvidia", "cuda": "12.8"}
    assert where["base"] == "nvcr.io/nvidia/cuda:12.8.1-base-ubuntu24.04"


def test_a_jetson_pod_adds_l4t_and_jetpacks_tensorrt():
    parts = parts_of("convert", "pod", "agx-orin")
    assert parts["place"]["arch"] == "arm64" and parts["place"]["python"] == "3.10"
    assert parts["place"]["accelerator"]["l4t"] == "36.4.0"
    assert parts["tools"]["tensorrt"] == "10.3.0 (image)"
    # the lock pins the Jetson's Python 3.10 tools on their own (its markers evaluated for the image's Python)
    assert (parts["tools"]["numpy"], parts["tools"]["onnxruntime"]) == ("2.2.6", "1.23.2")
    assert parts["tools"]["cuda-python"] == "12.6.2.post1"


def test_the_cpu_pod_has_no_accelerator():
    assert parts_of("build", "pod")["place"]["accelerator"] == {"kind": "none"}


@pytest.mark.parametrize("stage", ["build", "train", "quantize"])
def test_every_tool_of_a_cpu_or_gpu_pod_stage_is_pinned_to_one_version(stage: str):
    tools = parts_of(stage, "pod")["tools"]
    assert tools and all(EXACT.match(v) for v in tools.values()), tools


@pytest.mark.parametrize("stage", ["convert", "hil"])
def test_a_jetson_stage_is_never_keyed_by_a_range(stage: str):
    """Every tool pinned by the lock, but TensorRT, which JetPack brings and the image's label names."""
    for tool, version in parts_of(stage, "pod", "orin-nx")["tools"].items():
        assert EXACT.match(version) or (tool == "tensorrt" and version == "10.3.0 (image)"), (tool, version)


def test_a_laptops_cpu_train_entry_is_never_the_gpu_pods(monkeypatch):
    monkeypatch.setattr(place, "local_accelerator", lambda: {"kind": "none"})
    laptop = key_for(REPO, PIPELINE, CONFIG, PIPELINE.stage("train"), None, "local", {}, place="local")[0]
    pod = key_for(REPO, PIPELINE, CONFIG, PIPELINE.stage("train"), None, "local", {}, place="pod")[0]
    monkeypatch.setattr(place, "local_accelerator", lambda: {"kind": "nvidia"})
    workstation = key_for(REPO, PIPELINE, CONFIG, PIPELINE.stage("train"), None, "local", {}, place="local")[0]
    assert len({laptop, pod, workstation}) == 3


def test_a_local_key_names_this_python_and_machine():
    import platform

    where = parts_of("train", "local")["place"]
    assert where["python"] == ".".join(platform.python_version_tuple()[:2])
    assert where["arch"] in (place._ARCH.get(platform.machine().lower()), platform.machine())
    assert "cuda" in parts_of("train", "local")["tools"]["torch"]  # the torch build, not only its version


@pytest.mark.parametrize("env,expected", [({}, "local"), ({"JENKINS_URL": "http://j/"}, "pod"),
                                          ({"HILCI_STORE_SECRET": "hilci-store"}, "pod"),
                                          ({"JENKINS_URL": "http://j/", "HILCI_KEY_PLACE": "local"}, "local")])
def test_a_stage_in_a_pod_keys_itself_as_the_plan_keyed_that_pod(monkeypatch, env, expected):
    for name in ("JENKINS_URL", "HILCI_STORE_SECRET", "HILCI_KEY_PLACE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert place.default_place() == expected


def test_the_lock_keeps_only_exact_pins_and_evaluates_markers(tmp_path: Path):
    (tmp_path / "constraints.txt").write_text("a==1.0\nb>=2\nc==3; python_version >= '3.11'\nd==4,<5\n")
    assert place.lock_pins(tmp_path, None) == {"a": "1.0", "c": "3"}
    assert place.lock_pins(tmp_path, {"python_version": "3.10", "python_full_version": "3.10.0"}) == {"a": "1.0"}


def test_the_venv_and_the_images_install_from_the_lock():
    makefile = (REPO / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line and "-e " in line]
    assert installs and all("-c constraints.txt" in line for line in installs)
    assert (REPO / "tox.ini").read_text().count("PIP_CONSTRAINT = {toxinidir}/constraints.txt") >= 2
    for dockerfile in sorted((REPO / "images").glob("*/Dockerfile")):
        text = dockerfile.read_text()
        deps = [line for line in text.splitlines() if re.search(r"pip install .*/src\[", line)]
        assert deps and all("-c /src/constraints.txt" in line for line in deps), dockerfile
        assert 'LABEL dev.hilci.python="' in text, f"{dockerfile}: the key reads the image's Python from its label"


def test_hilci_run_keys_the_local_place_even_inside_a_jenkins_job(project: Path, tmp_path: Path, monkeypatch):
    """`hilci run` (e.g. `make pipeline` in a CI job) runs every stage on this machine: it never keys a pod."""
    from hilci.local.cached import StageCache
    from hilci.stage.run import load_config
    from hilci.store.session import StoreSession
    from tests.fixture_pipelines import PIPELINE as FIXTURE

    monkeypatch.setenv("JENKINS_URL", "http://jenkins.example/")
    session = StoreSession.open(project, FIXTURE, load_config(project, FIXTURE), url=(tmp_path / "s").as_uri())
    try:
        consulted = StageCache(session).consult(FIXTURE.stage("gen"), None)
        assert consulted.parts["place"]["kind"] == "local"
        assert session.key(FIXTURE.stage("gen"), None)[1]["place"]["kind"] == "pod"  # `hilci stage` in the pod
    finally:
        session.close()


def test_the_plan_says_which_fact_of_the_place_changed():
    import copy

    from hilci.store.keys import explain

    old = parts_of("train", "pod")
    new = copy.deepcopy(old)
    new["place"]["python"], new["tools"]["numpy"], new["env"] = "3.13", "2.5.0", {"HILCI_X": "1"}
    assert explain(old, new) == [f"tool numpy {old['tools']['numpy']} -> 2.5.0", "env HILCI_X added",
                                 "place: python '3.12' -> '3.13'"]
