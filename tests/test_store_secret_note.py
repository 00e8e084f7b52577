"""A pod whose template reads the store Secret but got no store (the Secret missing from its namespace, or without
HILCI_STORE: `optional: true` lets the pod start anyway) says so in one line of the stage's log."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hilci.example import PIPELINE
from hilci.store import stagerun

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def ran(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(stagerun, "run_stage", lambda *a, **kw: calls.append(a[2]) or 0)
    monkeypatch.delenv("HILCI_STORE", raising=False)
    monkeypatch.delenv("HILCI_STAGE_CACHE", raising=False)
    return calls


def test_a_pod_without_its_store_secret_says_so_once(ran, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HILCI_STORE_SECRET", "hilci-store")
    assert stagerun.run_stage_with_store(tmp_path, PIPELINE, "build", None, "local") == 0
    assert ran == ["build"]  # the stage still runs, as a miss
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("note: no store")]
    assert len(notes) == 1, out
    assert "Secret 'hilci-store'" in notes[0] and "caches nothing across builds" in notes[0]


def test_no_note_outside_a_pod_or_with_a_store(ran, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("HILCI_STORE_SECRET", raising=False)  # a laptop, even when these tests run in a pod
    assert stagerun.run_stage_with_store(tmp_path, PIPELINE, "build", None, "local") == 0  # a laptop
    assert "no store" not in capsys.readouterr().out
    assert stagerun.missing_store_note("s3://hilci/ci") is None
    monkeypatch.setenv("HILCI_STORE_SECRET", "hilci-store")
    assert stagerun.missing_store_note("s3://hilci/ci") is None


def test_every_pod_template_names_the_secret_its_envfrom_reads():
    for path in sorted((ROOT / "podtemplates").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())["spec"]
        hilci = next(c for c in spec["containers"] if c["name"] == "hilci")
        secrets = [s["secretRef"]["name"] for s in hilci.get("envFrom", []) if "secretRef" in s]
        named = [e["value"] for e in hilci.get("env", []) if e["name"] == stagerun.ENV_STORE_SECRET]
        assert secrets and named == secrets, path
