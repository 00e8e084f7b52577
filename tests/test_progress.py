"""Progress inside a running stage: the protocol, the live line, and `hilci run` showing it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from hilci.local.progress import LiveProgress
from hilci.pipeline.model import Pipeline, Stage
from hilci.stage.progress import PROGRESS_ENV, StageProgress, progress_file, read_progress, report_progress
from tests.fixture_pipelines import make_project
from tests.scratch import child_env

REPO = Path(__file__).resolve().parents[1]


def test_a_stage_writes_its_progress_only_where_the_runner_asks(tmp_path: Path, monkeypatch):
    target = progress_file(tmp_path, "train")
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    report_progress(1, 10, "epoch")
    assert not target.exists() and read_progress(target) is None
    monkeypatch.setenv(PROGRESS_ENV, str(target))
    report_progress(3, 10, "epoch")
    assert json.loads(target.read_text()) == {"done": 3, "total": 10, "what": "epoch"}
    assert read_progress(target).text() == "epoch 3/10"
    report_progress(12, 40, "tests", failed=2)
    assert read_progress(target) == StageProgress(12, 40, "tests", 2)
    assert read_progress(target).text() == "12/40 tests, 2 failed"
    target.write_text('{"done": ')  # a torn or foreign file is ignored, never an error
    assert read_progress(target) is None


def test_the_live_line_shows_progress_inside_the_stage():
    out = io.StringIO()
    stage = Stage(name="train", pod="gpu", does="FP32 training", entry="m:f")
    live = LiveProgress(out)
    live.tick(stage, 4.2)
    assert out.getvalue().endswith("train      running   4.2 s  FP32 training")
    live.tick(stage, 5.0, StageProgress(3, 10, "epoch"))
    assert out.getvalue().endswith("train      running   5.0 s  epoch 3/10 · FP32 training")


def test_training_reports_each_epoch(tmp_path: Path, monkeypatch):
    from hilci.conversion.train import TrainSettings, train_fp32

    target = tmp_path / "train.json"
    monkeypatch.setenv(PROGRESS_ENV, str(target))
    rng = np.random.default_rng(0)
    x = rng.random((16, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    train_fp32(x, y, 8, TrainSettings(epochs=3, batch_size=8))
    assert read_progress(target) == StageProgress(3, 3, "epoch")


SUITE = '''
import pytest

@pytest.mark.parametrize("n", range(3))
def test_counted(n):
    assert n != 1
'''


def run_suite(tmp_path: Path, *args: str) -> dict:
    (tmp_path / "test_counted.py").write_text(textwrap.dedent(SUITE))
    target = tmp_path / "progress.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "hilci.hil.summary", "-q", "-p", "no:cacheprovider",
                           *args, "test_counted.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=child_env(PYTHONPATH=str(REPO), **{PROGRESS_ENV: str(target)}))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return json.loads(target.read_text())


def test_a_pytest_session_reports_tests_done_of_total(tmp_path: Path):
    assert run_suite(tmp_path) == {"done": 3, "total": 3, "what": "tests", "failed": 1}


def test_under_xdist_the_controller_reports_for_every_worker(tmp_path: Path):
    assert run_suite(tmp_path, "-n", "2") == {"done": 3, "total": 3, "what": "tests", "failed": 1}


def counting(ctx) -> None:
    """A stage that reports two of five steps, then works a while (long enough for the runner to look)."""
    report_progress(2, 5, "steps")
    time.sleep(float(ctx.config.get("sleep", 1.5)))
    ctx.case("counted")


PIPELINE = Pipeline(stages=(Stage(name="count", pod="cpu", does="counts", entry="tests.test_progress:counting",
                                  cacheable=False),))


@pytest.mark.pipeline
def test_hilci_run_shows_the_progress_a_stage_writes(tmp_path: Path):
    project = make_project(tmp_path, "count: {sleep: 1.5}\n")
    proc = subprocess.run([sys.executable, "-m", "hilci", "run"], cwd=project, capture_output=True, text=True,
                          timeout=120, env=child_env(PYTHONPATH=str(REPO), CI="true",
                                                     HILCI_PIPELINE="tests.test_progress:PIPELINE"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[count] 2/5 steps (" in proc.stdout
    assert "1 test" in proc.stdout.split("stage ", 1)[1]  # the summary's headline for a passing stage
