"""The project's own pipeline, end to end, in a scratch copy of the repository: what `make pipeline` does."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from hilci.results import junit
from tests.conftest import hilci
from tests.scratch import scratch_copy

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]


def run_hilci(root: Path, *args: str) -> subprocess.CompletedProcess:
    """The project's own pipeline (no fixture definition), with the time a cold run of it needs."""
    return hilci(root, *args, pipeline="", timeout=1500)


def statuses(root: Path) -> dict[str, str]:
    return {s["name"]: s["status"] for s in json.loads((root / "reports/run.json").read_text())["stages"]}


def test_the_pipeline_runs_then_hits_the_cache(tmp_path: Path):
    root = scratch_copy(tmp_path)
    # the unit tests run once in CI (the pipeline's build stage, then `make test-rest`): here the build stage
    # runs only the smoke suite, which is enough to show it runs pytest and merges its JUnit
    config = root / "hilci.yaml"
    config.write_text(re.sub(r"(?m)^  unit_test_marker: .*$", "  unit_test_marker: smoke", config.read_text()))
    cold = run_hilci(root, "run")
    assert cold.returncode == 0, cold.stdout[-4000:] + cold.stderr[-4000:]
    stages = ["build", "train", "quantize", "convert", "hil", "report"]
    assert statuses(root) == dict.fromkeys(stages, "passed")
    for artifact in ("artifacts/train/model.pt", "artifacts/quantize/model.onnx", "artifacts/convert/engine.onnx",
                     "artifacts/convert/benchmark.json"):
        assert (root / artifact).is_file(), artifact
        assert (root / (artifact + ".manifest.json")).is_file(), artifact
    cases = junit.read_cases(root / "reports/junit.xml")
    assert {c.suite.split(".")[1] for c in cases if c.suite.startswith("hilci.")} >= set(stages) - {"hil"}
    assert any(c.suite.startswith("hil") and c.measurements for c in cases), "no HIL measurements in the JUnit"
    assert "<svg class='timeline'" in (root / "reports/index.html").read_text()
    unit = [c for c in cases if c.suite == "hilci.build.unit-tests"]
    assert unit and all(c.classname.startswith("tests.test_definition") for c in unit), [c.classname for c in unit]

    trace = run_hilci(root, "trace", "artifacts/convert/engine.onnx")
    assert trace.returncode == 0, trace.stderr
    assert "load_digits" in trace.stdout and "commit" in trace.stdout

    # a change to a HIL suite alone must not retrain: hil reruns on the cached engine, and build (which lints and
    # tests hil_tests/ byte for byte) beside it. A docstring, not a comment: hil keys Python by what it means.
    suite = root / "hil_tests" / "test_latency.py"
    suite.write_text(suite.read_text().replace('"""Latency:', '"""Latency (edited):', 1))
    warm = run_hilci(root, "run")
    assert warm.returncode == 0, warm.stdout[-4000:] + warm.stderr[-4000:]
    assert statuses(root) == {"build": "passed", "train": "cached", "quantize": "cached", "convert": "cached",
                              "hil": "passed", "report": "passed"}
