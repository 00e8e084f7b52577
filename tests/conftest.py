"""Helpers and fixtures the test modules share: `hilci()` (the CLI as a subprocess in a clean environment),
`project` (a project folder for the fixture pipelines), `alive()` (a process check that counts a zombie as dead).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixture_pipelines import GOOD, make_project
from tests.scratch import child_env

REPO = Path(__file__).resolve().parents[1]
FIXTURE_PIPELINE = "tests.fixture_pipelines:PIPELINE"


def hilci(root: Path, *args: str, pipeline: str = FIXTURE_PIPELINE, env: dict[str, str] | None = None,
          timeout: float = 120, **popen) -> subprocess.CompletedProcess:
    """`python -m hilci ARGS` in `root`, as a fresh shell would run it: none of the HILCI_* variables a
    surrounding `hilci run` set nor AWS_* credentials, CI=true (plain progress lines); `pipeline` is a definition
    in this repository's tests (importable through PYTHONPATH), "" for the project's own; `env` adds or overrides."""
    clean = {k: v for k, v in child_env().items() if not k.startswith("AWS_")}
    fixture = {"HILCI_PIPELINE": pipeline, "PYTHONPATH": str(REPO)} if pipeline else {}  # the tests' pipelines
    full = {**clean, "CI": "true", **fixture, **(env or {})}
    return subprocess.run([sys.executable, "-m", "hilci", *args], cwd=root, env=full, capture_output=True, text=True,
                          timeout=timeout, **popen)


def alive(pid: int) -> bool:
    """Whether process `pid` still runs; a zombie (ended, not yet reaped by its parent) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process under a reused id: not ours, so not alive for us
        return False
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder for `tests.fixture_pipelines:PIPELINE` with its GOOD hilci.yaml."""
    return make_project(tmp_path / "p", GOOD)
