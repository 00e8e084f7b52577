"""images/*/Dockerfile: each stage's declared tools are installed by its pod's image, and the pod templates name
images built from these files: the Dockerfiles are parsed, and (the slow tests) built and run with docker or,
without a Docker engine, podman over stand-in bases (images/build.py)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hilci.example import PIPELINE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on tomli below 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "images"))
import build as image_build  # noqa: E402  (images/build.py: standard library only)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    return canonical(re.split(r"[\s\[<>=!~;@]", spec.strip(), maxsplit=1)[0])


def commands(shell: str) -> list[list[str]]:
    """A RUN line's commands (split at &&, ;, ||, |), each as its words, quotes honoured."""
    lexer = shlex.shlex(shell, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    out: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", ";", "||", "|"):
            out.append([])
        else:
            out[-1].append(token)
    return [c for c in out if c]


class Dockerfile:
    """What a Dockerfile installs, read from its instructions (continuations joined)."""

    def __init__(self, path: Path):
        self.path = path
        text = re.sub(r"\\\n", " ", path.read_text())
        self.instructions = [(w.split(None, 1) + [""])[:2] for w in text.splitlines()
                             if w.strip() and not w.lstrip().startswith("#")]
        self.base = next(arg for op, arg in self.instructions if op.upper() == "FROM").split()[0]
        self.labels = {}
        for op, arg in self.instructions:
            if op.upper() == "LABEL":
                for word in shlex.split(arg):
                    key, _, value = word.partition("=")
                    self.labels[key] = value
        self.extras: set[str] = set()
        self.pip: set[str] = set()
        self.apt: set[str] = set()
        for op, arg in self.instructions:
            if op.upper() != "RUN":
                continue
            for words in commands(arg):
                if "pip" in words and "install" in words:
                    for w in words[words.index("install") + 1:]:
                        if w.startswith("-") or w in ("/src/constraints.txt",) or w.startswith("https://"):
                            continue
                        m = re.fullmatch(r"/src(?:\[(.*)\])?", w)
                        if m:
                            self.extras |= set((m.group(1) or "").split(",")) - {""}
                            self.extras.add("")  # the core dependencies
                        else:
                            self.pip.add(requirement_name(w))
                if "apt-get" in words and "install" in words:
                    self.apt |= {w for w in words[words.index("install") + 1:] if not w.startswith("-")}

    @property
    def image(self) -> str:
        return self.labels["dev.hilci.image"]


def project_requirements() -> dict[str, set[str]]:
    """Extra name ('' for the core) -> the distributions it installs, from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {"": {requirement_name(r) for r in project["dependencies"]}}
    for extra, reqs in project["optional-dependencies"].items():
        out[extra] = {requirement_name(r) for r in reqs}
    return out


def installed_by(docker: Dockerfile) -> set[str]:
    reqs = project_requirements()
    names = set(docker.pip) | set(docker.labels.get("dev.hilci.system-python", "").split())
    for extra in docker.extras:
        assert extra in reqs, f"{docker.path}: installs unknown extra [{extra}]"
        names |= reqs[extra]
    return {canonical(n) for n in names}


DOCKERFILES = sorted((ROOT / "images").glob("*/Dockerfile"))


def image_for(template: str) -> Dockerfile:
    """The Dockerfile whose image the template's `hilci` container runs."""
    pod = yaml.safe_load((ROOT / template).read_text())
    image = next(c["image"] for c in pod["spec"]["containers"] if c["name"] == "hilci")
    matches = [d for d in map(Dockerfile, DOCKERFILES) if d.image == image]
    assert matches, f"{template}: image {image} is built by no images/*/Dockerfile " \
                    f"(they build {', '.join(Dockerfile(p).image for p in DOCKERFILES)})"
    return matches[0]


def test_there_is_a_dockerfile_per_pod_kind():
    assert {p.parent.name for p in DOCKERFILES} == {"cpu", "gpu", "jetson"}


@pytest.mark.parametrize("stage", [s.name for s in PIPELINE.stages])
def test_each_stage_s_tools_are_installed_by_its_pod_image(stage):
    s = PIPELINE.stage(stage)
    for template in PIPELINE.pod_templates(s):
        docker = image_for(template)
        missing = sorted(canonical(t) for t in s.tools if canonical(t) not in installed_by(docker))
        assert not missing, f"stage {stage}: {template} runs {docker.image} ({docker.path.relative_to(ROOT)}), " \
                            f"which does not install {', '.join(missing)}"


def test_the_jetson_image_is_jetpack6_with_tensorrt_from_the_system():
    docker = Dockerfile(ROOT / "images" / "jetson" / "Dockerfile")
    assert re.fullmatch(r"nvcr\.io/nvidia/l4t-jetpack:r36\.\d+(\.\d+)?", docker.base), docker.base
    assert "tensorrt" not in docker.pip, "TensorRT comes from JetPack; a pip one would not match the board"
    venv = [arg for op, arg in docker.instructions if op == "RUN" and "venv" in arg]
    assert any("--system-site-packages" in v for v in venv), "the venv must see JetPack's TensorRT"
    assert any("python3 -m venv" in v for v in venv)  # JetPack 6's Python 3.10, which its TensorRT is built for


def test_images_run_as_the_pod_templates_user():
    for path in DOCKERFILES:
        docker = Dockerfile(path)
        users = [arg for op, arg in docker.instructions if op.upper() == "USER"]
        assert users and users[-1].strip() == "1000", f"{path}: must end as USER 1000 (runAsUser in the templates)"


def test_the_venv_belongs_to_the_pods_user():
    """The Jenkinsfile's first step reinstalls hilci into the venv as uid 1000 (runAsUser): a venv made as root
    fails it with Permission denied (the slow test below runs it)."""
    for path in DOCKERFILES:
        user = "root"
        for op, arg in Dockerfile(path).instructions:
            if op.upper() == "USER":
                user = arg.strip()
            if op.upper() == "RUN" and re.search(r"-m venv\b", arg):
                assert user == "1000", f"{path.relative_to(ROOT)}: the venv is made as {user}, not as uid 1000"


def test_each_venv_has_the_setuptools_our_pyproject_needs():
    """`pip install --no-build-isolation -e .` builds with the venv's setuptools: `license = "Apache-2.0"` needs
    77 or later (Ubuntu 22.04's, under the jetson venv's --system-site-packages, is 59; Python 3.12's venv has
    none)."""
    needed = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert "setuptools>=77" in needed
    for path in DOCKERFILES:
        words = [w for op, arg in Dockerfile(path).instructions if op.upper() == "RUN" for c in commands(arg)
                 if "pip" in c and "install" in c for w in c]
        floors = [int(m.group(1)) for w in words if (m := re.fullmatch(r"setuptools>=(\d+).*", w))]
        assert floors and max(floors) >= 77, f"{path.relative_to(ROOT)}: pip installs no setuptools>=77"
        assert "wheel" in words, f"{path.relative_to(ROOT)}: pip installs no wheel (pyproject's build requires)"


def test_the_tensorrt_check_is_skipped_only_by_the_stand_in_build_arg():
    text = (ROOT / "images" / "jetson" / "Dockerfile").read_text()
    assert re.search(r"^ARG HILCI_NO_TENSORRT=$", text, re.M), "the skip must default to off"
    assert 'LABEL dev.hilci.no-tensorrt="${HILCI_NO_TENSORRT}"' in text, "a skipped check must show on the image"
    assert "import tensorrt" in text
    assert image_build.NO_TENSORRT, "images/build.py passes a reason for its stand-in"


def test_a_tool_missing_from_the_image_is_caught(tmp_path):
    """The check can fail: a cpu image without the dev extra lacks ruff and build."""
    broken = tmp_path / "Dockerfile"
    text = (ROOT / "images" / "cpu" / "Dockerfile").read_text().replace("[train,cluster,dev]", "[train]")
    broken.write_text(text)
    missing = {t for t in PIPELINE.stage("build").tools if canonical(t) not in installed_by(Dockerfile(broken))}
    assert missing == {"ruff", "build"}


# --- The images themselves, built here (images/build.py: docker where its engine answers, else podman over
# stand-in bases) and run as the pods run them.

WORKSPACE = "/home/jenkins/agent/workspace"  # where the Kubernetes plugin mounts the checkout


def container_engine() -> str:
    """docker when its engine answers, else podman; a missing engine fails the test (never a skip)."""
    if image_build.docker_works():
        return "docker"
    if not shutil.which("podman"):
        pytest.fail("no Docker engine answers and podman is missing: run 'make container-tools' (as root: "
                    "apt-get install -y podman runc debootstrap); tests/test_images.py builds and runs the images")
    return "podman"


@pytest.mark.slow
@pytest.mark.parametrize("name", image_build.NAMES)
def test_the_jenkinsfile_s_first_step_works_in_the_image_as_uid_1000(name, tmp_path):
    """Every stage starts with `pip install --no-deps --no-build-isolation -e .` on the checkout, as uid 1000
    (runAsUser): the venv must be writable by it, and hold a setuptools that reads our pyproject.toml (>= 77)."""
    engine = container_engine()
    try:
        image_build.build([name], engine, log=lambda _: None)
    except image_build.BuildError as e:
        pytest.fail(f"images/{name}/Dockerfile does not build: {e}")
    checkout = tmp_path / "workspace"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(checkout)], check=True)
    subprocess.run(["chown", "-R", "1000:1000", str(checkout)], check=True)
    steps = ("python -m pip install --quiet --no-deps --no-build-isolation -e . && hilci --help && id -u "
             "&& python -m pip show hilci")
    cmd = [engine, "run", "--rm", "--network", "host", "--user", "1000", "-v", f"{checkout}:{WORKSPACE}",
           "-w", WORKSPACE, image_build.image_tag(name), "sh", "-c", steps]
    env = image_build.podman_env() if engine == "podman" else None
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{name} image, as uid 1000: {steps}\n{out[-3000:]}"
    assert "usage: hilci" in proc.stdout and "\n1000\n" in proc.stdout, out[-3000:]
    # hilci now runs from the checkout (the editable install), not from the image's copy.
    assert f"Editable project location: {WORKSPACE}" in proc.stdout, out[-3000:]


def extras_closure(extras: set[str]) -> set[str]:
    """The extras an install pulls in, those named by another extra (dev's `hilci[store]`) included."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found, todo = set(), list(extras)
    while todo:
        extra = todo.pop()
        if extra in found:
            continue
        found.add(extra)
        for req in project["optional-dependencies"].get(extra, []):
            m = re.fullmatch(r"\s*hilci\[([^\]]+)\].*", req)
            if m:
                todo += m.group(1).split(",")
    return found


@pytest.mark.parametrize("template", sorted(p.name for p in (ROOT / "podtemplates").glob("*.yaml")))
def test_a_pod_that_reads_the_store_secret_runs_an_image_with_the_store_extra(template):
    """Every hilci container reads the store Secret (envFrom) and `hilci stage` then caches through S3: an image
    without s3fs fails each stage at its start ('store s3://... needs s3fs'; found by make pods in the gpu pod)."""
    pod = yaml.safe_load((ROOT / "podtemplates" / template).read_text())
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "hilci")
    refs = [r["secretRef"]["name"] for r in container.get("envFrom") or [] if "secretRef" in r]
    assert refs == ["hilci-store"], f"{template}: the hilci container reads the store Secret"
    docker = image_for(f"podtemplates/{template}")
    assert "store" in extras_closure(docker.extras), \
        f"podtemplates/{template}: {docker.image} ({docker.path.relative_to(ROOT)}) does not install hilci[store]"
