"""Regression gates: direction, relative and statistical thresholds, too little history, and `hilci run` failing
(exit 1) on a regression with the message a reader needs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hilci.pipeline.sections import HIGHER, LOWER, NEUTRAL, GateSettings
from hilci.results import junit
from hilci.store.gates import direction_of, judge, t_quantile
from tests.conftest import hilci
from tests.fixture_pipelines import make_project
from tests.test_runner import GOOD

pytestmark = [pytest.mark.pipeline]  # what it needs: the fast tier leaves it out


def _baseline(values: list[float], commit: str = "a1b2c3d4e5") -> list[tuple[dict, float]]:
    return [({"commit": commit if i == len(values) - 1 else f"c{i:09d}"}, v) for i, v in enumerate(values)]


def test_a_regression_reads_as_value_change_baseline_branch_runs_and_commit():
    base = _baseline([4.9, 5.1, 5.0, 4.95, 5.05, 5.0, 4.9, 5.1, 5.0, 5.02, 4.98, 5.0])
    j = judge("imu.jitter.p99", 6.9, "ms", base, "main", GateSettings())
    assert j.regressed
    assert j.message == "imu.jitter.p99 6.9 ms, +38% over baseline 5.0 ms (main, 12 runs up to a1b2c3d)"
    assert not judge("imu.jitter.p99", 5.1, "ms", base, "main", GateSettings()).regressed
    assert not judge("imu.jitter.p99", 3.0, "ms", base, "main", GateSettings()).regressed  # better


def test_too_little_history_is_reported_not_gated():
    j = judge("convert.latency", 50.0, "ms", _baseline([1.0, 1.0]), "main", GateSettings())
    assert j.status == "too-little-history" and not j.regressed
    assert "2 green runs of main on this board (need 5); not gated" in j.message


@pytest.mark.parametrize("name, unit, direction", [
    ("convert.latency", "ms", LOWER), ("imu.jitter.p99", "ms", LOWER), ("imu.rate", "Hz", HIGHER),
    ("train.accuracy", "", HIGHER), ("convert.throughput", "qps", HIGHER), ("quantize.qat_drop", "pp", LOWER),
    ("gen.score", "pt", NEUTRAL), ("convert.cv", "%", NEUTRAL), ("quantize.parity.max_abs", "", NEUTRAL),
    ("servo.roundtrip.p99", "ms", LOWER)])
def test_directions_follow_name_and_unit(name, unit, direction):
    assert direction_of(name, unit) == direction


def test_a_zero_baseline_is_not_gated_by_a_relative_threshold():
    j = judge("quantize.ptq_drop", 0.279, "pp", _baseline([0.0] * 6), "main", GateSettings())
    assert j.status == "not-gated" and "baseline 0" in j.message


def test_higher_is_better_flags_a_drop_and_the_config_overrides_direction_and_tolerance():
    base = _baseline([0.99] * 6)
    assert judge("train.accuracy", 0.80, "", base, "main", GateSettings()).regressed
    assert not judge("train.accuracy", 0.999, "", base, "main", GateSettings()).regressed
    loose = GateSettings(measurements={"train.accuracy": {"tolerance": 0.5}})
    assert not judge("train.accuracy", 0.80, "", base, "main", loose).regressed
    flipped = GateSettings(measurements={"gen.score": {"direction": "higher"}})
    assert judge("gen.score", 0.5, "pt", _baseline([1.0] * 6), "main", flipped).regressed


@pytest.mark.parametrize("test", ["t", "z"])
def test_noise_never_alarms_and_a_20_percent_regression_is_flagged_on_its_first_run(test: str):
    """30 noise-only runs (3% jitter) against the growing baseline: no alarm; then +20%: flagged at once."""
    rng = random.Random(7)
    settings = GateSettings(test=test)
    history: list[tuple[dict, float]] = []
    alarms = 0
    for i in range(30):
        value = 10.0 * (1 + rng.gauss(0, 0.03))
        alarms += judge("convert.latency", value, "ms", history, "main", settings).regressed
        history.append(({"commit": f"{i:07d}"}, value))
    assert alarms == 0
    assert judge("convert.latency", 12.0, "ms", history, "main", settings).regressed


def test_the_t_quantile_is_close_to_the_tables():
    assert t_quantile(0.99, 10) == pytest.approx(2.764, abs=0.01)
    assert t_quantile(0.975, 5) == pytest.approx(2.571, abs=0.02)
    assert t_quantile(0.99, 1000) == pytest.approx(2.330, abs=0.005)


@pytest.mark.parametrize("bad, message", [
    ("windw: 3", "hilci.yaml: regressions.windw: unknown setting (did you mean 'window'?)"),
    ("test: chi", "hilci.yaml: regressions.test: 'chi' is not one of t, z, none"),
    ("min_runs: 1", "hilci.yaml: regressions.min_runs: expected a whole number >= 2"),
    ("measurements: {imu.rate: {direction: up}}", "regressions.measurements.imu.rate.direction: 'up' is not one of"),
])
def test_bad_gate_settings_name_the_field(tmp_path: Path, bad, message):
    """Read as every hilci.yaml section is: one line naming the file and the dotted field."""
    from hilci.example import PIPELINE
    from hilci.pipeline.config import read

    (tmp_path / "hilci.yaml").write_text(f"regressions:\n  {bad}\n")
    _, problems = read(tmp_path, PIPELINE)
    assert len(problems) == 1 and message in problems[0], problems


def test_hilci_run_fails_on_a_regression_and_says_it(tmp_path: Path):
    gated = GOOD + "regressions:\n  min_runs: 3\n  measurements:\n    check.score: {direction: higher}\n"
    root = make_project(tmp_path / "p", gated + f"store: {(tmp_path / 'team').as_uri()}\n")
    gated += f"store: {(tmp_path / 'team').as_uri()}\n"
    for i in range(3):
        proc = hilci(root, "run", "--no-cache", env={"HILCI_COMMIT": f"{i:040d}", "HILCI_BRANCH": "main"})
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "too-little-history" not in proc.stdout
    (root / "hilci.yaml").write_text(gated.replace("check:\n", "check:\n  value: 0.7\n"))
    proc = hilci(root, "run", env={"HILCI_COMMIT": "b" * 40, "HILCI_BRANCH": "main"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ("regression: check.score 0.7 pt, -30% under baseline 1.0 pt (main, 3 runs up to 0000000)"
            in proc.stdout)
    cases = {c.name: c for c in junit.read_cases(root / "reports" / "junit.xml") if c.suite == "hilci.regressions"}
    assert cases["check.score"].status == "failed"
    assert "check: cache entry" in proc.stdout and "regressed, the next run measures again" in proc.stdout
    # a feature branch is compared with its target branch's baseline
    proc = hilci(root, "run", env={"HILCI_COMMIT": "c" * 40, "HILCI_BRANCH": "feature/x",
                                   "HILCI_TARGET_BRANCH": "main"})
    assert proc.returncode == 1 and "(main, 3 runs" in proc.stdout
    # the laptop's own .hilci-cache: reported, never failing the run (a busy laptop is not CI's history)
    (root / "hilci.yaml").write_text(gated.replace(f"store: {(tmp_path / 'team').as_uri()}\n", "")
                                     .replace("check:\n", "check:\n  value: 0.7\n"))
    for i in range(3):
        assert hilci(root, "run", "--no-cache", env={"HILCI_COMMIT": f"{i:040d}"}).returncode == 0
    (root / "hilci.yaml").write_text(gated.replace(f"store: {(tmp_path / 'team').as_uri()}\n", "")
                                     .replace("check:\n", "check:\n  value: 0.55\n"))
    proc = hilci(root, "run", env={"HILCI_COMMIT": "d" * 40})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "regression (reported, not gated: no shared store): check.score 0.55 pt" in proc.stdout


@pytest.mark.parametrize("emulated, status", [(True, "inconclusive"), (False, "regression")])
def test_timing_on_an_emulated_rig_is_reported_not_gated(tmp_path: Path, emulated: bool, status: str):
    """A busy shared host stretches an emulated rig's timing: a jump there is inconclusive; a real rig is gated."""
    from hilci.pipeline.config import Config
    from hilci.store import history
    from hilci.store.session import StoreSession
    from tests.fixture_pipelines import PIPELINE

    root = make_project(tmp_path / "p", GOOD)
    session = StoreSession.open(root, PIPELINE, Config(root / "hilci.yaml"), url=(tmp_path / "team").as_uri())
    session.origin["target"] = "main"
    for i in range(6):
        value = 13.0 if i == 5 else 2.0 + 0.01 * i
        record = history.make_record(
            origin={"commit": f"{i:040d}", "branch": "main", "build": f"#{i}"}, board="sim", rig="sim.yaml",
            stage="hil", start=1000.0 + i, duration_s=1.0, status="passed", key="", environment={},
            measurements={"camera.jitter": {"value": value, "unit": "ms"}})
        record["emulated"] = emulated
        if i < 5:
            history.append(session.store, record, root)
    session.records = [record]
    (judgement,) = session.judge()
    session.close()
    assert judgement.status == status
    assert judgement.message.startswith("camera.jitter 13.0 ms, +")
    assert judgement.message.endswith("emulated rig, not gated") == emulated
