"""One truth for a failed run (issue 16, 5): summary, JUnit, report badge, `hilci history` and `compare` agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilci.pipeline.sections import GateSettings
from hilci.results import junit
from hilci.store.gates import judge
from tests.fixture_pipelines import make_project
from tests.test_runner import GOOD
from tests.test_store_cache import hilci

GATED = GOOD + "regressions:\n  min_runs: 3\n  measurements:\n    check.score: {direction: higher}\n"


@pytest.fixture(scope="module")
def regressed(tmp_path_factory) -> tuple[Path, str]:
    """Three green runs on main, then one whose check.score regresses (every stage still passes its limits)."""
    tmp = tmp_path_factory.mktemp("verdicts")
    store = f"store: {(tmp / 'team').as_uri()}\n"
    root = make_project(tmp / "p", GATED + store)
    for i in range(3):
        proc = hilci(root, "run", "--no-cache", env={"HILCI_COMMIT": f"{i:040d}", "HILCI_BRANCH": "main"})
        assert proc.returncode == 0, proc.stdout + proc.stderr
    (root / "hilci.yaml").write_text(GATED.replace("check:\n", "check:\n  value: 0.7\n") + store)
    proc = hilci(root, "run", env={"HILCI_COMMIT": "b" * 40, "HILCI_BRANCH": "main"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return root, proc.stdout


@pytest.mark.pipeline
def test_the_summary_says_the_regressed_run_failed_and_why(regressed):
    """Today: 'note: regression: ...' and '3/3 stages passed'."""
    _, out = regressed
    last = out.strip().splitlines()[-1]
    assert "FAILED: 1 measurement(s) regressed" in last, last
    assert "\nregression: check.score 0.7 pt, -30% under baseline 1.0 pt" in out
    assert "note: regression" not in out


@pytest.mark.pipeline
def test_the_report_badge_and_junit_say_failed(regressed):
    """Today the badge says PASSED above 'Failures (1 test)'."""
    root, _ = regressed
    html = (root / "reports" / "index.html").read_text()
    assert "badge passed" not in html and "<span class='badge failed'>FAILED</span>" in html
    assert "1 regressed" in html
    cases = [c for c in junit.read_cases(root / "reports" / "junit.xml") if c.suite == "hilci.regressions"]
    assert [c.status for c in cases] == ["failed"]


@pytest.mark.pipeline
def test_history_lists_the_regressed_run_as_regressed(regressed):
    """Today `hilci history -m` shows the measurement's own limit verdict: 'pass'."""
    root, _ = regressed
    proc = hilci(root, "history", "-m", "check.score", "-b", "main")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line[:1].isdigit()]
    assert rows[-1].rstrip().endswith("regressed") and rows[-1].split()[1] == "bbbbbbb", proc.stdout
    assert rows[0].rstrip().endswith("pass"), proc.stdout


@pytest.mark.pipeline
def test_compare_says_better_or_worse_by_direction(regressed):
    from hilci.store.cli import compare_values

    root, _ = regressed
    proc = hilci(root, "compare", "0" * 40, "b" * 40)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "check.score" in x)
    assert "-30.0%" in line and line.rstrip().endswith("worse"), proc.stdout
    assert compare_values("imu.latency.p99", "ms", 2.0, 1.5, GateSettings())[1] == "better"
    assert compare_values("gen.score", "pt", 1.0, 2.0, GateSettings())[1] == "changed (no direction)"


def test_no_percentage_of_a_baseline_at_or_below_zero():
    """Today: '+386% over baseline -0.39 pp'."""
    from hilci.store.cli import compare_values

    change, verdict = compare_values("quantize.qat_drop", "pp", -0.39, 1.12, GateSettings())
    assert "%" not in change and change == "+1.51" and verdict == "worse"
    base = [({"commit": f"{i:07d}"}, v) for i, v in enumerate([-0.4, -0.38, -0.39, -0.41, -0.37])]
    j = judge("quantize.qat_drop", 1.12, "pp", base, "main", GateSettings())
    assert "%" not in j.message and "+1.51 pp over baseline -0.39 pp" in j.message, j.message


@pytest.mark.parametrize("optional", [False, True])
@pytest.mark.pipeline
def test_a_configured_s3_store_without_credentials_is_an_error_unless_optional(tmp_path: Path, optional: bool):
    """Today a missing key silently turns the store into a full rebuild with exit 0, and doctor says ok."""
    root = make_project(tmp_path / "p", GOOD + "store: s3://hilci/ci\n" + ("store_optional: true\n" * optional))
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    run = hilci(root, "run", env=env)
    doctor = hilci(root, "doctor", env=env)
    if optional:
        assert run.returncode == 0, run.stdout + run.stderr
        assert "no S3 credentials" in run.stdout and doctor.returncode == 0
    else:
        assert run.returncode == 2 and "store s3://hilci/ci: no S3 credentials" in run.stderr, run.stderr
        assert doctor.returncode == 2 and "no S3 credentials" in doctor.stdout + doctor.stderr
        assert "Traceback" not in run.stderr + doctor.stderr
