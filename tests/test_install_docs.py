"""The README and docs/hil.md give the same Jetson install, and it installs what the project really ships."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/hil.md")
INSTALL = re.compile(r"[^\s`]*pip install [^`\n]*?\[jetson\]'?")
VENV = re.compile(r"python3? -m venv [^`\n#]*")


def commands(doc: str, pattern: re.Pattern) -> set[str]:
    return {" ".join(m.group(0).split()) for m in pattern.finditer((REPO / doc).read_text())}


def extras_and_version() -> tuple[set[str], str]:
    text = (REPO / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    extras = set(re.findall(r"^([A-Za-z0-9_-]+)\s*=\s*\[", section, re.MULTILINE))
    version = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE).group(1)
    return extras, version


def test_readme_and_hil_guide_give_the_same_jetson_install():
    installs = {doc: commands(doc, INSTALL) for doc in DOCS}
    assert installs["README.md"], "the README gives no Jetson install command"
    assert installs["README.md"] == installs["docs/hil.md"], installs
    venvs = {doc: commands(doc, VENV) for doc in DOCS}
    assert venvs["README.md"] == venvs["docs/hil.md"] == {"python3 -m venv --system-site-packages .venv"}, \
        "the venv must see JetPack's TensorRT (--system-site-packages), the same way in both documents"


def test_the_install_is_from_a_clone_or_the_built_wheel_with_an_extra_that_exists():
    extras, version = extras_and_version()
    installs = commands("README.md", INSTALL)
    sources = set()
    for command in installs:
        assert "-c constraints.txt" in command, f"{command}: the pins in constraints.txt must apply"
        spec = command.rsplit(" ", 1)[-1].strip("'\"")
        source, named = re.fullmatch(r"(.+)\[([^\]]+)\]", spec).groups()
        assert set(named.split(",")) <= extras, f"{command}: no such extra in pyproject.toml ({sorted(extras)})"
        sources.add(source)
    assert sources == {".", f"dist/hilci-{version}-py3-none-any.whl"}, \
        f"expected a clone ('.') and the wheel the build stage makes, not {sources}"
