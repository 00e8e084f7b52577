"""The local runner, through `hilci run` in real subprocesses: order, stop on failure, skips, aborts, cache."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hilci.results import junit
from tests.conftest import REPO, alive, hilci
from tests.fixture_pipelines import GOOD, make_project
from tests.scratch import child_env

pytestmark = [pytest.mark.pipeline]  # what it needs: the fast tier leaves it out

__all__ = ["GOOD", "REPO", "hilci", "runs", "statuses"]  # shared with the store and plan tests


def runs(root: Path) -> list[str]:
    path = root / "runs.log"
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def statuses(root: Path) -> dict[str, str]:
    data = json.loads((root / "reports" / "run.json").read_text())
    return {s["name"]: s["status"] for s in data["stages"]}


def test_stages_run_in_order_and_reports_are_written(project: Path):
    proc = hilci(project, "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert runs(project) == ["gen", "check", "final"]
    assert statuses(project) == {"gen": "passed", "check": "passed", "final": "passed"}
    assert (project / "out/gen/a.txt").read_text() == "input v1\ngen says hi\n"
    cases = junit.read_cases(project / "reports" / "junit.xml")
    assert [c.suite for c in cases] == ["hilci.gen", "hilci.check", "hilci.final"]
    assert {c.classname for c in cases} == {"hilci.gen", "hilci.check", "hilci.final"}
    assert cases[0].measurements["gen.score"] == {"value": "1.0", "unit": "pt", "low": "0.5", "verdict": "pass"}
    html = (project / "reports" / "index.html").read_text()
    assert "<svg class='timeline'" in html and "gen.score" in html
    assert "3/3 stages passed" in proc.stdout
    for name in ("gen", "check", "final"):
        assert (project / "reports" / "logs" / f"{name}.log").exists()


def test_a_failing_gate_stops_the_run_and_skips_the_rest_with_the_reason(project: Path):
    (project / "hilci.yaml").write_text(GOOD.replace("check:\n", "check:\n  value: 0.25\n"))
    proc = hilci(project, "run")
    assert proc.returncode == 1
    assert statuses(project) == {"gen": "passed", "check": "failed", "final": "skipped"}
    assert runs(project) == ["gen", "check"]
    cases = {c.suite: c for c in junit.read_cases(project / "reports" / "junit.xml")}
    assert cases["hilci.check"].status == "failed"
    assert cases["hilci.check"].message == "check score 0.25 pt below limit 0.5 pt (0.5 pt floor)"
    assert cases["hilci.final"].status == "skipped"
    assert cases["hilci.final"].message == "skipped: stage 'check' failed"
    html = (project / "reports" / "index.html").read_text()
    assert "check score 0.25 pt below limit 0.5 pt" in html


def test_a_crashing_stage_is_an_error_with_its_traceback(project: Path):
    (project / "hilci.yaml").write_text(GOOD.replace("check:\n", "check:\n  crash: true\n"))
    proc = hilci(project, "run")
    assert proc.returncode == 2
    case = next(c for c in junit.read_cases(project / "reports/junit.xml") if c.suite == "hilci.check")
    assert case.status == "error" and case.message == "RuntimeError: boom in stage body"
    assert "Traceback" in case.text


def test_a_stage_that_dies_without_junit_still_gets_a_testcase_with_its_log_tail(project: Path):
    (project / "hilci.yaml").write_text(GOOD.replace("check:\n", "check:\n  hard_exit: 3\n"))
    proc = hilci(project, "run")
    assert proc.returncode == 2
    case = next(c for c in junit.read_cases(project / "reports/junit.xml") if c.suite == "hilci.check")
    assert case.status == "error"
    assert "exited with code 3 without writing reports/junit/check.xml" in case.message
    assert "about to die without JUnit" in case.text
    assert statuses(project)["final"] == "skipped"


def test_a_stage_past_its_timeout_is_killed_and_reported(tmp_path: Path):
    make_project(tmp_path, "slow: {sleep: 60}\nafter: {}\n")
    start = time.monotonic()
    proc = hilci(tmp_path, "run", pipeline="tests.fixture_pipelines:TIMEOUT")
    assert time.monotonic() - start < 50  # the 60 s sleep did not run out
    assert proc.returncode == 2
    assert statuses(tmp_path) == {"slow": "error", "after": "skipped"}
    case = junit.read_cases(tmp_path / "reports/junit/slow.xml")[0]
    assert case.message == "timed out after 1 s" and "sleeping" in case.text
    pid = int((tmp_path / "slow.pid").read_text())
    assert not alive(pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_abort_by_signal_stops_the_child_group_and_writes_junit(project: Path, sig: signal.Signals):
    (project / "hilci.yaml").write_text(GOOD.replace("check:\n", "check:\n  sleep: 60\n"))
    env = child_env(PYTHONPATH=str(REPO), HILCI_PIPELINE="tests.fixture_pipelines:PIPELINE", CI="1")
    runner = subprocess.Popen([sys.executable, "-m", "hilci", "run"], cwd=project, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    pid_file = project / "check.pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid_file.exists(), "the check stage never started"
    runner.send_signal(sig)
    out, _ = runner.communicate(timeout=30)
    assert runner.returncode == 128 + sig.value, out
    assert not alive(int(pid_file.read_text()))
    cases = {c.suite: c for c in junit.read_cases(project / "reports/junit.xml")}
    assert cases["hilci.gen"].status == "passed"
    assert cases["hilci.check"].status == "error"
    assert f"aborted by {sig.name}" in cases["hilci.check"].message
    assert cases["hilci.final"].message == f"skipped: pipeline aborted by {sig.name}"


def test_a_second_run_with_nothing_changed_is_cached_and_restores_outputs(project: Path):
    assert hilci(project, "run").returncode == 0
    (project / "out/gen/a.txt").unlink()
    proc = hilci(project, "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert statuses(project) == {"gen": "cached", "check": "cached", "final": "passed"}
    assert runs(project) == ["gen", "check", "final", "final"]
    assert (project / "out/gen/a.txt").read_text() == "input v1\ngen says hi\n"
    assert "[gen] cached" in proc.stdout
    text = (project / "reports/junit/gen.xml").read_text()
    assert 'name="hilci.cached" value="true"' in text


def test_a_changed_input_or_config_misses_the_cache(project: Path):
    assert hilci(project, "run").returncode == 0
    (project / "src/input.txt").write_text("input v2\n")
    assert hilci(project, "run").returncode == 0
    assert statuses(project)["gen"] == "passed"
    assert (project / "out/gen/a.txt").read_text() == "input v2\ngen says hi\n"
    (project / "hilci.yaml").write_text(GOOD.replace("checked", "checked again"))
    assert hilci(project, "run").returncode == 0
    assert statuses(project) == {"gen": "cached", "check": "passed", "final": "passed"}
    assert hilci(project, "run", "--no-cache").returncode == 0
    assert statuses(project) == {"gen": "passed", "check": "passed", "final": "passed"}


def test_only_and_from_select_stages(project: Path):
    assert hilci(project, "run", "--only", "gen").returncode == 0
    assert runs(project) == ["gen"]
    assert hilci(project, "run", "--from", "check", "--no-cache").returncode == 0
    assert runs(project) == ["gen", "check", "final"]
    assert list(statuses(project)) == ["check", "final"]


@pytest.mark.parametrize("args, config, message", [
    (("run", "--only", "nope"), GOOD, "unknown stage 'nope' (stages: gen, check, final)"),
    (("stage", "nope"), GOOD, "unknown stage 'nope'"),
    (("run",), "gen: [unclosed\n", "hilci.yaml: line 2: malformed YAML"),
    (("run",), "deploy: {}\n", "hilci.yaml: deploy: unknown section (valid: gen, check, final, store, regressions, soak, trusted_branches, store_optional, pipeline, kinds, boards)"),
])
def test_bad_input_is_one_line_and_exit_2(project: Path, args, config, message):
    (project / "hilci.yaml").write_text(config)
    proc = hilci(project, *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_malformed_definition_is_one_line_and_exit_2(project: Path):
    proc = hilci(project, "run", pipeline="tests.fixture_pipelines:CYCLIC")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "hilci: error: cycle in stage needs: a -> b -> a"
    proc = hilci(project, "run", pipeline="tests.fixture_pipelines:NOPE")
    assert proc.returncode == 2 and "pipeline definition 'tests.fixture_pipelines:NOPE' cannot be loaded" in proc.stderr


def test_a_missing_input_file_is_named(project: Path):
    (project / "src/input.txt").unlink()
    proc = hilci(project, "run")
    assert proc.returncode == 2
    assert "stage 'gen': input file src/input.txt is missing" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unreadable_cache_is_named(project: Path):
    (project / ".hilci-cache").write_text("not a folder")
    proc = hilci(project, "run")
    assert proc.returncode == 2
    assert ".hilci-cache is not a directory" in proc.stderr


@pytest.mark.parametrize("emulate, second", [(True, "cached"), (False, "passed")])
def test_a_stage_on_a_real_rig_always_reruns(tmp_path: Path, emulate: bool, second: str):
    make_project(tmp_path, "probe: {}\n")
    (tmp_path / "podtemplates" / "jetson-b.yaml").write_text("kind: Pod\n")
    (tmp_path / "rig.yaml").write_text(f"name: r\nemulate: {str(emulate).lower()}\n"  # a valid rig: checked first
                                       "devices:\n  imu: {driver: imu, port: /dev/serial/by-id/usb-x, baud: 921600}\n")
    for _ in range(2):
        proc = hilci(tmp_path, "run", "--rig", "rig.yaml", pipeline="tests.fixture_pipelines:RIGGED")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert statuses(tmp_path) == {"probe": second}
    proc = hilci(tmp_path, "run", "--rig", "missing.yaml", pipeline="tests.fixture_pipelines:RIGGED")
    assert proc.returncode == 2 and "rig file missing.yaml does not exist" in proc.stderr


@pytest.mark.parametrize(("check", "code", "status"), [
    ({"infra": "gnss at /dev/x did not answer within 2 s"}, 3, "not_built"),
    ({"infra": "gnss at /dev/x did not answer within 2 s", "value": 0.25}, 1, "failed"),
])
def test_a_stage_whose_only_failures_are_the_rigs_is_not_built_not_an_error(project: Path, check, code, status):
    """`hilci stage` exits 3 when only the rig failed: the run says "not built (infrastructure)" in its summary,
    history and exit code (3), as the Jenkinsfile marks the stage NOT_BUILT; a code failure beside it stays 1."""
    (project / "hilci.yaml").write_text(GOOD.replace("check:\n", f"check:\n  infra: {check['infra']}\n"
                                                     + (f"  value: {check['value']}\n" if "value" in check else "")))
    proc = hilci(project, "run")
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert statuses(project)["check"] == status and statuses(project)["final"] == "skipped"
    if status == "not_built":
        assert "NOT BUILT (infrastructure)" in proc.stdout
        assert "only infrastructure failed (exit 3): the rig, not the code" in proc.stdout
        assert "skipped: stage 'check' not_built" in (project / "reports/junit.xml").read_text()
