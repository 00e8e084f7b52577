"""Tests never touch a store they did not start; stages get the store's keys only if they use it (issue 16, 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixture_pipelines import PIPELINE, make_project
from tests.scratch import REPO, child_env
from tests.test_runner import GOOD
from tests.test_store_cache import hilci


def test_a_store_passed_in_wins_over_hilci_store_in_the_environment(tmp_path: Path, monkeypatch):
    from hilci.pipeline.config import Config
    from hilci.store.session import StoreSession

    monkeypatch.setenv("HILCI_STORE", (tmp_path / "team-of-someone-else").as_uri())
    root = make_project(tmp_path / "p", GOOD)
    session = StoreSession.open(root, PIPELINE, Config(root / "hilci.yaml"), url=(tmp_path / "mine").as_uri())
    session.close()
    assert session.display.endswith("/mine") and session.gating
    assert not (tmp_path / "team-of-someone-else").exists()


def test_the_suite_run_inside_a_pipeline_writes_nothing_into_the_pipelines_store(tmp_path: Path):
    """Today a CI run of the unit tests left fake main/sim history records (1970, commit 000000000000) in the
    team's store, and that run's own gate judged against them."""
    team = tmp_path / "team"
    env = {**child_env(), "HILCI_STORE": team.as_uri(), "AWS_SECRET_ACCESS_KEY": "the-pipelines-key",
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_gates.py::test_timing_on_an_emulated_rig_is_reported_not_gated"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    written = [p for p in team.rglob("*") if p.is_file()] if team.exists() else []
    assert written == []


def test_child_env_has_no_store_credentials(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-children")
    monkeypatch.setenv("HILCI_STORE", "s3://team/ci")
    env = child_env()
    assert "AWS_SECRET_ACCESS_KEY" not in env and "HILCI_STORE" not in env


@pytest.mark.pipeline
def test_a_stage_gets_the_store_keys_only_if_it_uses_the_store(tmp_path: Path):
    root = make_project(tmp_path / "p", GOOD.replace("check:\n  write: {out/check/ok.txt: \"checked\\n\"}\n", ""))
    env = {"HILCI_STORE": (tmp_path / "team").as_uri(), "AWS_SECRET_ACCESS_KEY": "write-key",
           "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}
    proc = hilci(root, "run", env=env, pipeline="tests.fixture_pipelines:STORE_USER")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = dict(line.split()[0::2] for line in (root / "runs.log").read_text().splitlines())
    assert seen == {"gen": "store-keys=False", "final": "store-keys=True"}
