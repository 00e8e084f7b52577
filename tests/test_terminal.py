"""What `hilci run` and `pytest hil_tests` print at the end: a summary that uses the terminal and says why."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from hilci.local.progress import summary_table
from hilci.pipeline.model import StageOutcome
from hilci.results import junit
from hilci.results.measurements import Measurement, distribution, measure
from tests.scratch import child_env

REPO = Path(__file__).resolve().parents[1]
PORT_GONE = "imu at /dev/serial/by-id/usb-imu did not answer within 2 s"


def stage_junit(junit_dir: Path, stage: str, cases, props=()) -> Path:
    return junit.write_suite(junit_dir / f"{stage}.xml", f"hilci.{stage}", cases, [("hilci.stage", stage), *props])


def test_the_detail_column_uses_the_terminals_width_and_wraps_instead_of_cutting(tmp_path: Path):
    long_reason = "pytest hil_tests could not run: " + " ".join(f"word{i}" for i in range(30))
    outcome = StageOutcome("hil", "error", 0.0, 3.0, long_reason)
    wide = summary_table([outcome], [], tmp_path, width=400)
    row = next(line for line in wide.splitlines() if line.startswith("hil "))
    assert len(row) > 100 and row.rstrip().endswith("word29"), "the detail was cut at a fixed width"
    narrow = summary_table([outcome], [], tmp_path, width=80)
    lines = narrow.splitlines()
    assert all(len(line) <= 80 for line in lines), narrow
    assert "word29" in narrow and " ".join(narrow.split()).count("word") == 30  # wrapped, nothing lost


def test_every_failure_is_counted_and_the_first_causes_named(tmp_path: Path):
    cases = [junit.make_case(f"test_rate[imu{i}]", "hil_tests.test_sensors", failure=PORT_GONE) for i in range(15)]
    cases += [junit.make_case("test_fix", "hil_tests.test_sensors", failure="gnss fix quality 0 below limit 1"),
              junit.make_case("test_servo", "hil_tests.test_actuators", error="servo at /dev/x: no status packet"),
              junit.make_case("test_cam", "hil_tests.test_sensors", failure="camera contrast 2 below limit 5"),
              junit.make_case("test_loop", "hil_tests.test_latency")]
    stage_junit(tmp_path, "hil", cases)
    text = summary_table([StageOutcome("hil", "failed", 0.0, 9.0, f"test_rate[imu0]: {PORT_GONE}")], [], tmp_path,
                         width=1000)
    row = next(line for line in text.splitlines() if line.startswith("hil "))
    assert "18 of 19 tests failed" in row
    assert f"{PORT_GONE} (15 tests: test_rate[imu0], test_rate[imu1], …)" in row
    assert "test_fix: gnss fix quality 0 below limit 1" in row
    assert "and 1 more cause" in row


def test_passing_stages_show_their_headline_figures(tmp_path: Path):
    stage_junit(tmp_path, "train", [junit.make_case("accuracy", "hilci.train",
                                                     measurements=[measure("train.accuracy", 0.99166, low=0.95)])])
    latency = distribution("convert.latency", [0.5] * 98 + [1.0, 2.0], "ms", high=10.0)
    stage_junit(tmp_path, "convert", [junit.make_case("latency", "hilci.convert", measurements=[latency]),
                                      junit.make_case("parity", "hilci.convert")])
    stage_junit(tmp_path, "quantize", [junit.make_case("drop", "hilci.quantize")],
                props=[("hilci.cached", "true"), ("hilci.cached.duration_s", "41.5")])
    outcomes = [StageOutcome("train", "passed", 0.0, 3.0), StageOutcome("convert", "passed", 3.0, 2.0),
                StageOutcome("quantize", "cached", 5.0, 0.1, "inputs unchanged (key abc)")]
    text = summary_table(outcomes, [], tmp_path, width=200)
    rows = {line.split()[0]: line for line in text.splitlines()[1:] if line and not line.startswith("-")}
    assert rows["train"].endswith("1 test · accuracy 0.9917")
    assert rows["convert"].endswith("2 tests · latency p99 1.01 ms")
    assert "1 test (cached, 41.5 s when produced; inputs unchanged (key abc))" in rows["quantize"]


def test_an_inconclusive_verdict_is_counted(tmp_path: Path):
    odd = Measurement("imu.jitter", 3.0, "ms", high=1.0, extra={"host_latency_p99": "4.2"})
    case = junit.make_case("jitter", "hil_tests.test_sensors",
                           properties=[(k, "inconclusive" if k.endswith(".verdict") else v)
                                       for k, v in odd.properties()])
    stage_junit(tmp_path, "hil", [case, junit.make_case("other", "hil_tests.test_sensors")])
    text = summary_table([StageOutcome("hil", "passed", 0.0, 1.0)], [], tmp_path, width=200)
    assert "2 tests · 1 inconclusive" in text


SUITE = '''
import pytest
from hilci.results.measurements import distribution, measure

def test_loop(record_property):
    for key, value in distribution("loop", [1.0] * 95 + [3.0] * 5, "ms", high=2.0).properties():
        record_property(key, value)
    pytest.fail("loop p99 over budget")

def test_rate(record_property):
    for m in (measure("imu.rate", 199.8, "Hz", low=196.0, high=204.0), measure("imu.samples", 2000.0)):
        for key, value in m.properties():
            record_property(key, value)

def test_plain():
    pass
'''


def test_pytest_prints_a_short_measurement_table_at_the_end(tmp_path: Path):
    (tmp_path / "test_suite.py").write_text(textwrap.dedent(SUITE))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "hilci.hil.summary", "-q", "-p", "no:cacheprovider",
                           str(tmp_path / "test_suite.py")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=child_env(PYTHONPATH=str(REPO), COLUMNS="120"))
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    table = out[out.index("measurements ="):].splitlines()
    header = next(i for i, line in enumerate(table) if line.startswith("test "))
    rows = table[header + 1:header + 4]
    assert rows[0].split()[:2] == ["test_loop", "loop"] and "p99 3 ms" in rows[0] and rows[0].endswith("fail")
    assert rows[1].split()[:2] == ["test_rate", "imu.rate"] and "196 – 204 Hz" in rows[1]
    assert rows[2].split()[:3] == ["test_rate", "imu.samples", "2000"] and rows[2].endswith("info")
    assert "3 measurements: 1 fail, 1 info, 1 pass" in out


def test_a_session_without_measurements_prints_no_table(tmp_path: Path):
    (tmp_path / "test_plain.py").write_text("def test_ok():\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "hilci.hil.summary", "-q", "-p", "no:cacheprovider",
                           str(tmp_path / "test_plain.py")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=child_env(PYTHONPATH=str(REPO)))
    assert proc.returncode == 0 and "measurements" not in proc.stdout


def test_on_a_narrow_terminal_the_table_drops_the_test_column_before_cutting_names():
    from hilci.hil.summary import measurement_table
    from hilci.results.measurements import parse_properties

    fields = parse_properties(measure("servo.id1.to3072.position_error", 1.0, "ticks", high=20.0).properties())
    rows = [("test_reaches_goal_positions_within_tolerance[servo]", name, f) for name, f in fields.items()]
    wide = measurement_table(rows, width=200)
    assert wide[1].startswith("test_reaches_goal_positions_within_tolerance[servo]  servo.id1.to3072")
    narrow = measurement_table(rows, width=70)
    assert narrow[0].split() == ["measurement", "value", "limits", "verdict"]
    assert narrow[1].split() == ["servo.id1.to3072.position_error", "1", "ticks", "≤", "20", "ticks", "pass"]
    assert all(len(line) <= 70 for line in narrow[:-1])
