"""Measurement history: a record per run and stage, `hilci history` with a sparkline, newer formats skipped and
named, `hilci compare`, and the report's trend section with the current run marked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hilci.store.history import RECORD_FORMAT, sparkline
from tests.conftest import hilci
from tests.fixture_pipelines import make_project
from tests.test_runner import GOOD

pytestmark = [pytest.mark.pipeline]  # what it needs: the fast tier leaves it out

VALUES = (0.9, 0.8, 1.0, 0.7)


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> Path:
    """Four runs on main, each with another check.score, by four commits."""
    root = make_project(tmp_path_factory.mktemp("h") / "p", GOOD)
    for i, value in enumerate(VALUES):
        (root / "hilci.yaml").write_text(GOOD.replace("check:\n", f"check:\n  value: {value}\n"))
        proc = hilci(root, "run", env=_env(i))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def _env(i: int) -> dict[str, str]:
    return {"HILCI_COMMIT": f"{i:x}" * 40, "HILCI_BRANCH": "main", "HILCI_BUILD": f"#{i}"}


def test_every_run_appends_a_record_per_stage_with_its_measurements(measured: Path):
    files = sorted((measured / ".hilci-cache" / "history" / "main" / "local").glob("*.json"))
    records = [json.loads(f.read_text()) for f in files]
    checks = [r for r in records if r["stage"] == "check"]
    assert [r["measurements"]["check.score"]["value"] for r in checks] == list(VALUES)
    first = checks[0]
    assert first["commit"] == "0" * 40 and first["branch"] == "main" and first["build"] == "#0"
    assert first["measurements"]["check.score"] == {"value": 0.9, "unit": "pt", "low": 0.5, "verdict": "pass"}
    assert first["status"] == "passed" and first["duration_s"] > 0 and first["cache_key"]
    assert {"host", "platform", "python", "cpus"} <= set(first["environment"])
    gens = [r for r in records if r["stage"] == "gen"]
    assert [g["cached"] for g in gens] == [False, True, True, True]  # gen's inputs never changed


def test_history_prints_a_table_with_a_sparkline(measured: Path):
    proc = hilci(measured, "history", "--branch", "main", env=_env(9))
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "check.score" in line)
    assert row.split()[:6] == ["local", "check.score", "4", "0.7", "0.7", "1"]
    assert sparkline(list(VALUES)) in row
    proc = hilci(measured, "history", "--measurement", "check.score", "--branch", "main", env=_env(9))
    assert proc.returncode == 0, proc.stderr
    assert f"check.score [pt]  {sparkline(list(VALUES))}" in proc.stdout
    assert [line.split()[1] for line in proc.stdout.splitlines() if line[:2] == "20"] == \
        [f"{i:x}" * 7 for i in range(4)]


def test_a_record_of_a_newer_format_is_skipped_and_named(measured: Path):
    folder = measured / ".hilci-cache" / "history" / "main" / "local"
    future = folder / "29991231T000000.000000Z-ffffffffffff-check.json"
    future.write_text(json.dumps({"format": RECORD_FORMAT + 1, "start": 1e10, "measurements": {}}))
    try:
        proc = hilci(measured, "history", "--branch", "main", env=_env(9))
        assert proc.returncode == 0, proc.stderr
        assert f"skipped: history/main/local/{future.name}: record format {RECORD_FORMAT + 1} is newer" in proc.stdout
        assert "check.score" in proc.stdout
    finally:
        future.unlink()


def test_compare_shows_the_differences_of_two_commits(measured: Path):
    proc = hilci(measured, "compare", "0" * 8, "3" * 8, env=_env(9))
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "check.score" in line)
    assert row.split() == ["local", "check.score", "0.9", "0.7", "-22.2%", "pt"]
    proc = hilci(measured, "compare", "0" * 8, "deadbeef", env=_env(9))
    assert proc.returncode == 2 and "no history for commit deadbeef" in proc.stderr


def test_the_report_shows_each_measurements_trend_with_this_run_marked(measured: Path):
    html = (measured / "reports" / "index.html").read_text()
    trends = html.split("<h2>Trends</h2>")[1]
    row = next(r for r in trends.split("<tr>") if "check.score" in r)
    assert "<td>4</td>" in row and "fill='#c62828'" in row and "this run 3333333: 0.7" in row
    assert row.count("<circle") == 1
