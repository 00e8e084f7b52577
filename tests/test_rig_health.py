"""Per-rig trends (#18 item 7): each rig's pass rate, infrastructure-failure rate, retries and soak figures over its
last runs, read from the history, in the report's Rigs section, a sick rig flagged with why; and in a browser."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from hilci.report.html import rig_section, write_reports
from hilci.results import junit
from hilci.results.measurements import measure
from hilci.store import history
from hilci.store.backend import Store
from hilci.store.righealth import rig_health, summary

ORIGIN = {"commit": "c0ffee1234567890", "branch": "main", "build": "1"}


def record(board: str, stage: str, status: str, start: float, failures=None, measurements=None) -> dict:
    r = history.make_record(origin={**ORIGIN, "build": str(int(start))}, board=board, rig=f"rigs/{board}.yaml",
                            stage=stage, start=start, duration_s=1.0, status=status, key="",
                            measurements=measurements or {}, environment={})
    r["failures"] = failures or {}
    return r


def soak_figures(growth: float, temp: float, verdict: str = "pass") -> dict:
    return {"soak.memory.growth": {"value": growth, "unit": "MB", "verdict": verdict},
            "soak.temperature.max": {"value": temp, "unit": "C", "verdict": "pass"},
            "soak.gpu.clock_under_load": {"value": math.nan, "unit": "%", "verdict": "inconclusive"}}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A history with two rigs: orin-nx healthy; agx-orin with a flaky cable and a leaking last soak."""
    s = Store((tmp_path / "store").as_uri())
    t0 = time.time() - 10 * 86400
    for i in range(10):
        history.append(s, record("orin-nx", "hil", "failed" if i == 4 else "passed", t0 + i * 3600,
                                 {"failure": 1} if i == 4 else {}), tmp_path)
        flaky = i % 3 == 0
        history.append(s, record("agx-orin", "hil", "failed" if flaky else "passed", t0 + i * 3600 + 60,
                                 {"infrastructure": 2, "retried": 2} if flaky else {"retried": 1}), tmp_path)
        history.append(s, record("agx-orin", "convert", "passed", t0 + i * 3600 + 30), tmp_path)  # not a rig run
    for day, (growth, verdict) in enumerate([(3.0, "pass"), (9.0, "pass"), (180.0, "fail")]):
        start = t0 + day * 86400 + 7200
        history.append(s, record("agx-orin", "soak", "passed" if verdict == "pass" else "failed", start,
                                 measurements=soak_figures(growth, 60 + day, verdict)), tmp_path)
    history.append(s, record("orin-nx", "soak", "passed", t0 + 7200, measurements=soak_figures(1.0, 55)), tmp_path)
    return s


def test_each_rigs_rates_and_soaks_come_from_its_history(store):
    rigs = {r["board"]: r for r in rig_health(store, "main", last=20)}
    agx, nx = rigs["agx-orin"], rigs["orin-nx"]
    assert (agx["runs"], agx["pass_pct"], agx["infra_pct"], agx["retried"]) == (10, 60.0, 40.0, 4 * 2 + 6)
    assert (nx["runs"], nx["pass_pct"], nx["infra_pct"]) == (10, 90.0, 0.0)  # a code failure is not the rig's
    assert agx["outcomes"].count("infrastructure") == 4 and nx["outcomes"][4] == "failed"
    assert [s["status"] for s in agx["soaks"]] == ["passed", "passed", "failed"]
    assert agx["soak_figures"]["soak.memory.growth"]["values"] == [3.0, 9.0, 180.0]
    assert "soak.gpu.clock_under_load" not in agx["soak_figures"]  # never measured: no figure, not a zero
    assert agx["sick"] == ("4 of its last 10 runs failed for infrastructure; its last soak failed "
                           "(soak.memory.growth)")
    assert nx["sick"] == ""


def test_last_n_runs_only():
    runs = [record("b", "hil", "failed", i, {"infrastructure": 1}) for i in range(5)]
    runs += [record("b", "hil", "passed", 10 + i) for i in range(5)]
    assert summary("b", runs[-5:], [])["infra_pct"] == 0.0 and summary("b", runs, [])["infra_pct"] == 50.0


def test_the_report_shows_every_rig_and_flags_the_sick_one(store, tmp_path):
    rigs = rig_health(store, "main")
    section = rig_section(rigs)
    assert section.count("<tr class='rig") == 2
    assert "<tr class='rig sick' data-board='agx-orin'>" in section
    assert "sick: 4 of its last 10 runs failed for infrastructure" in section
    assert "<td>60%</td><td>40%</td><td>14</td>" in section  # passed, infrastructure, retried
    assert "memory.growth <b>180</b> MB" in section and "▁▁█" in section  # the leak's trend over the soaks
    root = tmp_path / "run"
    suite = junit.write_suite(root / "reports" / "junit" / "hil.xml", "hil", [
        junit.make_case("t", "hil_tests.x", measurements=[measure("imu.rate", 200.0, "Hz")])], [("hilci.stage", "hil")])
    page = write_reports(root, [suite], rigs=rigs).read_text()
    assert "<h2>Rigs</h2>" in page and "data-board='orin-nx'" in page


@pytest.mark.browser
def test_the_rigs_section_renders_in_chromium(store, tmp_path):
    from tests.test_report_browser import png_facts, screenshot

    root = tmp_path / "run"
    suite = junit.write_suite(root / "reports" / "junit" / "hil.xml", "hil", [
        junit.make_case("t", "hil_tests.x", measurements=[measure("imu.rate", 200.0, "Hz")])], [("hilci.stage", "hil")])
    page = write_reports(root, [suite], rigs=rig_health(store, "main"))
    width, height, busy = png_facts(screenshot(page, tmp_path / "rigs.png", 1200, 900, tmp_path / "profile"))
    assert (width, height) == (1200, 900) and busy > 0.01
