"""`hilci soak`: the HIL suites looped on a compressed clock against the emulated rig with the tegrastats stand-in,
gated on trends: a clean soak passes and is recorded in the history; faults that leak (memory), drift (latency)
and throttle (GPU clock, temperature) each fail their own figure; bad input is one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from hilci.hil.soak import Inputs, drift, judge, theil_sen
from hilci.hil.tegrastats import Sample
from hilci.pipeline.sections import SoakSettings
from hilci.results.measurements import FAIL, INCONCLUSIVE, PASS
from tests.conftest import REPO, hilci

CFG = SoakSettings()
# a profile short enough for a compressed clock: one latency (servo round trip) and one rate (IMU)
PROFILE = ["-m", "actuator or sensor", "-k", "Servo and roundtrip or Imu and rate"]


def by_name(figures):
    return {m.name: m for m in figures}


def test_theil_sen_ignores_one_slow_round():
    points = [(t, 10.0 + 0.5 * t) for t in range(10)]
    points[4] = (4, 500.0)  # a busy host once
    slope, intercept = theil_sen(points)
    assert slope == pytest.approx(0.5) and intercept == pytest.approx(10.0)
    change, pct = drift(points)
    assert change == pytest.approx(4.5) and pct == pytest.approx(45.0)
    assert drift(points[:2]) is None  # too few to say


def test_trends_are_judged_relative_to_the_soak_not_per_hour():
    flat = [{"t": t, "outcome": "passed", "measurements": {"loop": {"unit": "ms", "p50": "20", "value": "30"},
                                                          "imu.rate": {"unit": "Hz", "value": "200"}}}
            for t in range(6)]
    rising = [{"t": t, "outcome": "passed", "measurements": {"loop": {"unit": "ms", "p50": str(20 + 4 * t)}}}
              for t in range(6)]
    assert by_name(judge(Inputs(rounds=flat), CFG))["soak.loop.drift"].verdict == PASS
    assert by_name(judge(Inputs(rounds=flat), CFG))["soak.imu.rate.drift"].verdict == PASS
    up = by_name(judge(Inputs(rounds=rising), CFG))["soak.loop.drift"]
    assert up.verdict == FAIL and up.value == pytest.approx(100.0)  # 20 -> 40 ms over the soak
    tiny = [{"t": t, "outcome": "passed", "measurements": {"servo.roundtrip": {"unit": "ms", "p50": str(0.3 + 0.1 * t)}}}
            for t in range(6)]  # +170%, but half a millisecond: a shared host's noise, not a trend
    assert by_name(judge(Inputs(rounds=tiny), CFG))["soak.servo.roundtrip.drift"].verdict == PASS


def test_memory_after_warm_up_gpu_clock_under_load_and_temperature():
    rss = [(t, 100.0 + (200 if t >= 2 else 0) + 30 * t) for t in range(10)]  # loads an engine, then leaks
    tegra = [Sample(t=t, gpu_load_pct=90, gpu_mhz=625 if t < 5 else 400, temps={"tj": 60 + 5 * t}) for t in range(10)]
    figures = by_name(judge(Inputs(rss=rss, tegra=tegra, warm_until=2), CFG))
    assert figures["soak.memory.growth"].value == pytest.approx(210) and figures["soak.memory.growth"].verdict == FAIL
    assert figures["soak.gpu.clock_under_load"].value == pytest.approx(64.0)
    assert figures["soak.temperature.max"].value == 105 and figures["soak.temperature.max"].verdict == FAIL
    idle = [Sample(t=t, gpu_load_pct=5, gpu_mhz=300, temps={"tj": 50}) for t in range(5)]
    assert by_name(judge(Inputs(tegra=idle), CFG))["soak.gpu.clock_under_load"].verdict == INCONCLUSIVE


def test_no_tegrastats_makes_the_board_figures_inconclusive_with_why_never_a_pass():
    figures = by_name(judge(Inputs(tegra_problem="tegrastats: tegrastats not found on PATH"), CFG))
    for name in ("soak.gpu.clock_under_load", "soak.temperature.max"):
        assert figures[name].verdict == INCONCLUSIVE and "not found on PATH" in figures[name].inconclusive
        assert math.isnan(figures[name].value)
    assert figures["soak.pass_rate"].verdict == INCONCLUSIVE  # nothing ran: not a pass either


@pytest.mark.parametrize("args, says", [
    (["--duration", "soon"], "--duration: 'soon': expected seconds or a number with s, m or h"),
    (["--duration", "5", "--fault", "servo:melt"], "--fault servo:melt: kind: unknown fault 'melt'"),
    (["--duration", "5", "--fault", "tegrastats:drift"], "kind: drift means nothing to a Jetson"),
    (["--duration", "5", "--fault", "lidar:leak"], "no device 'lidar' in the rig"),
])
def test_bad_input_is_one_line_and_exit_2(args, says):
    proc = hilci(REPO, "soak", "--rig", "hil_tests/rigs/sim.yaml", *args, pipeline="")
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_faults_on_a_real_rig_are_refused():
    proc = hilci(REPO, "soak", "--rig", "hil_tests/rigs/agx-orin.yaml", "--duration", "5", "--fault", "servo:drift",
                 pipeline="")
    assert proc.returncode == 2 and "is a real rig (emulate: false)" in proc.stderr


def test_a_bad_soak_section_in_hilci_yaml_is_named(tmp_path):
    from hilci.pipeline.config import read
    from hilci.pipeline.project import load_pipeline

    (tmp_path / "hilci.yaml").write_text("soak:\n  duration: forever\n  schedul: H 2 * * *\n")
    _, problems = read(tmp_path, load_pipeline("hilci.example:PIPELINE", tmp_path))
    assert any("soak.schedul: unknown setting" in p for p in problems), problems


def soak(tmp_path: Path, *faults: str, seconds: str = "7") -> tuple:
    store = tmp_path / "store"
    out = tmp_path / "out"
    proc = hilci(REPO, "soak", "--rig", "hil_tests/rigs/sim.yaml", "--duration", seconds, *PROFILE,
                 "--out", str(out), *[a for f in faults for a in ("--fault", f)], pipeline="",
                 env={"HILCI_STORE": store.as_uri(), "HILCI_LOCK_DIR": str(tmp_path / "locks")}, timeout=300)
    records = [json.loads(p.read_text()) for p in store.rglob("*-soak.json")]
    return proc, out, records


@pytest.mark.emulator
def test_a_clean_soak_passes_and_is_recorded_in_the_history(tmp_path):
    proc, out, records = soak(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "soak sim: PASSED" in proc.stdout
    (record,) = records
    assert record["stage"] == "soak" and record["board"] == "sim" and record["status"] == "passed"
    assert record["soak"]["rounds"] >= 2 and record["soak"]["runs"] >= 4
    m = record["measurements"]
    assert m["soak.memory.growth"]["verdict"] == "pass" and m["soak.gpu.clock_under_load"]["value"] == 100.0
    assert {"soak.servo.roundtrip.drift", "soak.imu.rate.drift", "soak.temperature.max"} <= set(m)
    assert (out / "soak.xml").is_file() and json.loads((out / "samples.json").read_text())["tegrastats"]
    rigs = hilci(REPO, "rigs", "--json", "--lock-dir", str(tmp_path / "locks"), pipeline="")
    (row,) = [r for r in json.loads(rigs.stdout)["rigs"] if r["rig"] == "sim"]
    assert row["last_soak"]["verdict"] == "passed" and row["last_soak"]["failed"] == []  # `hilci rigs` sees it


@pytest.mark.emulator
def test_leak_drift_and_throttle_each_fail_their_own_figure(tmp_path):
    proc, out, records = soak(tmp_path, "servo:drift:ramp=2", "imu:leak:ramp=25",
                              "tegrastats:throttle:ramp=8,after_s=2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    m = records[0]["measurements"]
    verdicts = {name: m[name]["verdict"] for name in m if name.endswith(".verdict") is False}
    assert verdicts["soak.servo.roundtrip.drift"] == "fail"
    assert verdicts["soak.memory.growth"] == "fail" and m["soak.memory.growth"]["value"] > 64
    assert verdicts["soak.gpu.clock_under_load"] == "fail"
    assert verdicts["soak.temperature.max"] == "fail"
    assert verdicts["soak.imu.rate.drift"] == "pass"  # a leak is not a slower stream
    assert records[0]["status"] == "failed"
    assert "fail         soak memory growth" in proc.stdout


@pytest.mark.emulator
def test_a_tegrastats_printing_unknown_lines_loses_nothing(tmp_path):
    fake = tmp_path / "tegrastats"
    fake.write_text("#!/bin/sh\nwhile true; do echo 'NVRM: GPU at PCI:0000:00:00: GPU has fallen off the bus'; "
                    "sleep 0.2; done\n")
    fake.chmod(0o755)
    store = tmp_path / "store"
    xml = tmp_path / "junit" / "hil-sim.xml"  # where a Jenkins soak build's hil stage publishes it
    proc = hilci(REPO, "soak", "--rig", "hil_tests/rigs/sim.yaml", "--duration", "3", *PROFILE, "--out",
                 str(tmp_path / "out"), "--tegrastats", str(fake), "--junit", str(xml), pipeline="",
                 env={"HILCI_STORE": store.as_uri()}, timeout=300)
    from hilci.results import junit

    cases = {c.name: c for c in junit.read_cases(xml)}
    assert {"soak.memory.growth", "soak.temperature.max", "soak.pass_rate"} <= set(cases)
    assert cases["soak.temperature.max"].classname == "sim.soak"
    assert "inconclusive soak.temperature.max: not measured: tegrastats: not a tegrastats line" in proc.stdout
    assert proc.stderr.count("not a tegrastats line") == 1  # said once, however many lines it printed
    (record,) = [json.loads(p.read_text()) for p in store.rglob("*-soak.json")]
    assert record["measurements"]["soak.pass_rate"]["verdict"] == "pass"  # the suites' results are all kept
    assert record["measurements"]["soak.temperature.max"]["verdict"] == "inconclusive"
