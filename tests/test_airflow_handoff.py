"""What Airflow's pods hand on through the store (python -m hilci.airflow.handoff), on a file:// store: no
Airflow needed, the pods' images have none."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hilci.airflow.handoff import run_prefix
from hilci.results.junit import make_case, write_suite
from tests.scratch import child_env

ROOT = Path(__file__).resolve().parents[1]
RUN_ID = "manual__2026-12-04T05:00:00+00:00"


def handoff(root: Path, store: Path, *args: str, run_id: str = RUN_ID) -> tuple[subprocess.CompletedProcess, dict]:
    xcom = root / "xcom.json"
    proc = subprocess.run([sys.executable, "-m", "hilci.airflow.handoff", *args], cwd=root, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env=child_env(PYTHONPATH=str(ROOT), HILCI_PIPELINE="hilci.example:PIPELINE",
                                        HILCI_STORE=store.as_uri(), HILCI_RUN_ID=run_id, HILCI_XCOM_FILE=str(xcom)))
    return proc, (json.loads(xcom.read_text()) if xcom.is_file() else {})


def _checkout(root: Path) -> Path:
    """A pod's workspace: a project (its hilci.yaml names the pipeline)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "hilci.yaml").write_text("pipeline: hilci.example:PIPELINE\n")
    return root


def _junit(root: Path, name: str, failure: str | None = None) -> None:
    _checkout(root)
    write_suite(root / "reports" / "junit" / f"{name}.xml", name,
                [make_case(f"{name} ok", f"hilci.{name}"), make_case(f"{name} gate", f"hilci.{name}", failure=failure)])


def test_junit_goes_from_each_pod_to_the_report_pod_and_the_summary_names_the_store(tmp_path):
    store = tmp_path / "store"
    build, hil, report = (tmp_path / n for n in ("build", "hil", "report"))
    _junit(build, "build")
    _junit(hil, "hil-orin-nx", failure="latency 31 ms > 20 ms")
    for pod, task in ((build, "build"), (hil, "hil-orin-nx")):
        proc, xcom = handoff(pod, store, "push", "--task", task, "--exit-code", "0")
        assert proc.returncode == 0, proc.stderr
        assert xcom["task"] == task and xcom["junit"] == [f"{task}.xml"]
    assert (store / run_prefix(RUN_ID) / "junit" / "build.xml").is_file()
    assert ":" not in run_prefix(RUN_ID) and "+" not in run_prefix(RUN_ID)

    proc, _ = handoff(_checkout(report), store, "pull")
    assert proc.returncode == 0 and "pulled 2 JUnit file(s)" in proc.stdout
    _junit(report, "report")
    proc, summary = handoff(report, store, "publish")
    assert proc.returncode == 0, proc.stderr
    assert summary["verdict"] == "failed"
    assert summary["counts"] == {"tests": 6, "passed": 5, "failed": 1, "error": 0, "skipped": 0}
    assert summary["junit"] == f"{store.as_uri()}/{run_prefix(RUN_ID)}/junit.xml"
    assert (store / run_prefix(RUN_ID) / "junit.xml").read_bytes() == (report / "reports" / "junit.xml").read_bytes()


def test_without_a_store_or_a_run_id_the_pod_says_which(tmp_path):
    _checkout(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "hilci.airflow.handoff", "push"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env=child_env(PYTHONPATH=str(ROOT)))
    assert proc.returncode == 2 and "$HILCI_RUN_ID is not set" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "hilci.airflow.handoff", "push"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env=child_env(PYTHONPATH=str(ROOT), HILCI_RUN_ID="r1"))
    assert proc.returncode == 2 and "no store configured (the hilci-store Secret sets HILCI_STORE)" in proc.stderr


def test_a_soak_pod_uploads_its_junit_and_returns_its_summary(tmp_path, monkeypatch):
    from hilci.airflow.handoff import soak_summary

    store, pod = tmp_path / "store", tmp_path / "soak"
    run_id = "scheduled__2026-12-05T02:12:00+00:00"
    _junit(pod, "soak-orin-nx", failure="soak.memory.growth 192 MB > 64 MB")
    proc, xcom = handoff(pod, store, "soak", "--task", "soak-orin-nx", "--exit-code", "1", run_id=run_id)
    assert proc.returncode == 0, proc.stderr
    assert xcom["task"] == "soak-orin-nx" and xcom["exit_code"] == 1 and xcom["verdict"] == "failed"
    assert xcom["counts"] == {"tests": 2, "passed": 1, "failed": 1, "error": 0, "skipped": 0}
    assert xcom["junit"] == f"{store.as_uri()}/{run_prefix(run_id)}/junit/soak-orin-nx.xml"
    assert (store / run_prefix(run_id) / "junit" / "soak-orin-nx.xml").is_file()

    # the same step in this process (a child per case is slow): a clean soak passes ...
    monkeypatch.setenv("HILCI_STORE", store.as_uri())
    monkeypatch.setenv("HILCI_PIPELINE", "hilci.example:PIPELINE")
    clean = tmp_path / "clean"
    _junit(clean, "soak-agx-orin")
    assert soak_summary(clean, run_id, "soak-agx-orin", 0)["verdict"] == "passed"
    # ... a non-zero exit fails it whatever the JUnit says, and bad input (exit 2, no JUnit) says what is missing
    assert soak_summary(clean, run_id, "soak-agx-orin", 1)["verdict"] == "failed"
    empty = soak_summary(_checkout(tmp_path / "empty"), run_id, "soak-orin-nx", 2)
    assert empty["verdict"] == "failed" and empty["why"] == "no reports/junit/soak-orin-nx.xml"
