"""The README's two commands on a fresh machine: `make pipeline` and `make test` each install, or name with the
exact command, what they need (issue 8.2: `make pipeline` failed because only `make test` installed Groovy).

The full check (a clean clone with groovy removed, `make pipeline` then `make test`) needs root and minutes; it
is documented in README.md and was run by hand. These tests hold the pieces that make it work.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")


def fake_bin(tmp_path: Path, uid: int) -> Path:
    """A PATH folder with no groovy and an `id` that says who we are."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (folder / "id").chmod(0o755)
    return folder


def make(tmp_path: Path, *args: str, uid: int = 1000) -> subprocess.CompletedProcess:
    assert MAKE, "make is missing: sudo apt-get install -y make"
    env = {"PATH": str(fake_bin(tmp_path, uid)), "HOME": str(tmp_path)}
    return subprocess.run([MAKE, "--no-print-directory", "-C", str(ROOT), *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_without_root_make_names_the_exact_command_and_fails(tmp_path):
    proc = make(tmp_path, "groovy")
    assert proc.returncode != 0
    assert "groovy is missing (the build stage and the tests parse the Jenkinsfile with it): " \
           "run 'sudo apt-get install -y groovy', then make again" in proc.stderr


def test_both_readme_targets_need_groovy_before_they_start():
    for target in ("pipeline", "test", "test-fast", "test-rest"):
        plan = subprocess.run([MAKE, "-n", "-C", str(ROOT), target], capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin"}).stdout
        assert "command -v groovy" in plan, plan
        assert plan.index("command -v groovy") < plan.index("hilci run" if target == "pipeline" else "pytest tests")


def test_ci_runs_the_readme_commands_in_a_new_users_order():
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    # every test once: the pipeline's build stage runs the fast tier, and `make test` (finding the build stage
    # cached for this code) every other one
    makes = [ln for ln in lines if ln.startswith("make ")]
    assert makes[0] == "make pipeline" and makes[-1] == "make test", makes
    readme = (ROOT / "README.md").read_text()
    assert all(f"\n{line} " in readme for line in (makes[0], makes[-1])), "CI runs a test command the README lacks"
    # the pods run every stage in its image: after the images, before the tests
    assert makes.index("make pods") == makes.index("make images") + 1, makes
