"""Trusted writers: a branch build reads what main wrote but never writes what main restores (issue 16, 1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hilci.store.trust import DEFAULT_TRUSTED, Trust, namespace, sanitise
from tests.fixture_pipelines import make_project
from tests.test_runner import GOOD, runs, statuses
from tests.test_store_cache import hilci


@pytest.fixture
def shared(tmp_path: Path) -> dict[str, str]:
    """A configured (shared) store on the file backend, as a team's S3 bucket would be."""
    return {"HILCI_STORE": (tmp_path / "team").as_uri()}


def _as(branch: str, env: dict, commit: str = "c0ffee0000000001") -> dict:
    return {**env, "HILCI_BRANCH": branch, "HILCI_COMMIT": commit}


def _written(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file() and p.name != ".probe")


@pytest.mark.pipeline
def test_a_branch_build_never_writes_what_main_restores(tmp_path: Path, shared: dict):
    """Today a PR build saves under main's key and main's next run is 'cached from' the PR."""
    project = make_project(tmp_path / "p", GOOD)
    store = tmp_path / "team"
    proc = hilci(project, "run", env=_as("feature/odd name", shared))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outside = [rel for rel in _written(store) if not rel.startswith(namespace("feature/odd name"))]
    assert outside == [], f"a branch build wrote outside its namespace: {outside}"
    shutil.rmtree(project / "out")
    (project / "runs.log").unlink()
    proc = hilci(project, "run", env=_as("main", shared, "c0ffee0000000002"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert statuses(project) == {"gen": "passed", "check": "passed", "final": "passed"}
    assert runs(project) == ["gen", "check", "final"]
    # the branch still restores its own entries, and then main's
    shutil.rmtree(project / "out")
    proc = hilci(project, "run", env=_as("feature/odd name", shared, "c0ffee0000000003"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert statuses(project)["gen"] == "cached"


@pytest.mark.pipeline
def test_an_entry_in_the_shared_layout_written_by_an_untrusted_branch_is_not_restored(tmp_path: Path,
                                                                                       shared: dict):
    """The branch recorded in an entry is checked: a record planted with leaked keys is discarded, not used."""
    project = make_project(tmp_path / "p", GOOD)
    store = tmp_path / "team"
    assert hilci(project, "run", env=_as("main", shared)).returncode == 0
    entry = next((store / "entries" / "gen").glob("*.json"))
    record = json.loads(entry.read_text())
    record["branch"] = "PR-7"
    entry.write_text(json.dumps(record))
    shutil.rmtree(project / "out")
    proc = hilci(project, "run", env=_as("main", shared, "c0ffee0000000002"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert statuses(project)["gen"] == "passed"
    assert "written by branch 'PR-7'" in proc.stdout


@pytest.mark.pipeline
def test_release_branches_are_trusted_and_trusted_branches_are_configured(tmp_path: Path, shared: dict):
    project = make_project(tmp_path / "p", GOOD + "trusted_branches: [develop]\n")
    store = tmp_path / "team"
    assert hilci(project, "run", env=_as("develop", shared)).returncode == 0
    assert (store / "entries" / "gen").is_dir() and not (store / "branches").exists()
    assert hilci(project, "run", env=_as("main", shared)).returncode == 0  # main is no longer trusted here
    assert (store / "branches" / sanitise("main")).is_dir()
    assert Trust("release/2.1", DEFAULT_TRUSTED).trusted and not Trust("releases", DEFAULT_TRUSTED).trusted
    bad = make_project(tmp_path / "q", GOOD + "trusted_branches: main\n")
    proc = hilci(bad, "run", env=_as("main", shared))
    assert proc.returncode == 2 and "trusted_branches" in proc.stderr


@pytest.mark.parametrize("branch", ["feature/x y", "feature-x-y", "../../entries", "ünï/cödé", "a" * 300, "."])
def test_a_branch_name_of_any_shape_is_one_safe_distinct_path_segment(branch: str):
    seg = sanitise(branch)
    assert "/" not in seg and seg not in (".", "..") and len(seg) <= 80 and seg.isascii()
    others = {sanitise(b) for b in ["feature/x y", "feature-x-y", "../../entries", "ünï/cödé", "a" * 300, "."]}
    assert len(others) == 6
