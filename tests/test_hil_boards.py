"""Two boards' HIL results merged stay distinct testcases, read as Jenkins's junit plugin reads them (classname
split at its last dot into package and class), and the suite says which rig, board, commit and host."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from junitparser import JUnitXml

from hilci.results.junit import merge
from tests.scratch import child_env

pytestmark = [pytest.mark.emulator, pytest.mark.pipeline]  # what it needs: the fast tier leaves it out

ROOT = Path(__file__).resolve().parents[1]


def run_board(tmp_path: Path, board: str) -> Path:
    rig = tmp_path / f"{board}.yaml"
    rig.write_text(yaml.safe_dump({"name": "bench", "emulate": True, "health_timeout_s": 2.0, "devices": {
        "imu": {"driver": "imu", "baud": 921600, "rate_tolerance_pct": 50}}}))
    junit = tmp_path / f"hil-{board}.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "hil_tests", "--rig", str(rig), f"--junitxml={junit}",
                           "-k", "TestImu and test_present", "-o", f"junit_suite_name=hil.{board}", "-q",
                           "-p", "no:cacheprovider"], cwd=ROOT, env=child_env(HILCI_BOARD=board),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return junit


def test_two_boards_merged_are_distinct_testcases_in_jenkins(tmp_path):
    merged = tmp_path / "all.xml"
    merge([run_board(tmp_path, "orin-nx"), run_board(tmp_path, "agx-orin")], merged)
    seen = set()
    for suite in JUnitXml.fromfile(str(merged)):
        props = {p.name: p.value for p in suite.properties()}
        board = suite.name.removeprefix("hil.")
        assert props["hil.board"] == board and props["hil.rig"] == "bench" and props["hil.hostname"]
        assert "hil.commit" in props
        for case in suite:
            package, _, cls = case.classname.rpartition(".")  # as Jenkins's junit plugin splits it
            assert package.startswith(f"{board}.") and cls == "TestImu"
            seen.add((package, cls, case.name))
    assert len(seen) == 2, seen


def test_a_matrix_stage_on_two_boards_keeps_two_testcases_per_check(tmp_path, monkeypatch):
    """`convert` runs per board like `hil`: its gates' classnames carry the board, its suite the rig, board,
    commit and host, so Jenkins's merged view keeps one testcase per board."""
    from hilci.stage.run import junit_path, run_stage
    from tests.fixture_pipelines import RIGGED, make_project

    root = make_project(tmp_path / "proj", "probe: {}\n")
    (root / "rig.yaml").write_text("name: bench\n")
    monkeypatch.chdir(root)
    monkeypatch.setenv("GIT_COMMIT", "0123456789abcdef")
    parts = []
    for board in ("orin-nx", "agx-orin"):
        assert run_stage(root, RIGGED, "probe", rig=Path("rig.yaml"), board=board) == 0
        parts.append(junit_path(root, RIGGED.stage("probe"), board))
    merged = tmp_path / "all.xml"
    merge(parts, merged)
    seen = set()
    for suite in JUnitXml.fromfile(str(merged)):
        props = {p.name: p.value for p in suite.properties()}
        board = props["hilci.board"]
        assert suite.name == f"hilci.probe.{board}"
        assert props["hilci.rig"] == "rig.yaml" and props["hilci.commit"] == "0123456789abcdef"
        assert props["hilci.host"]
        for case in suite:
            package, _, cls = case.classname.rpartition(".")
            assert (package, cls) == ("hilci.probe", board)
            seen.add((case.classname, case.name))
    assert len(seen) == 2, seen
