"""Benchmark statistics against a known list, the run loop's minimums, and parity numbers."""

from __future__ import annotations

import statistics

import numpy as np
import onnx
import pytest

from hilci.conversion import benchmark, parity
from hilci.conversion.engines import load_engine
from tests.test_conversion_lint import qdq_model


def test_summary_of_known_latencies():
    samples = [float(v) for v in range(1, 101)]  # 1..100 ms
    s = benchmark.summarize(samples, wall_s=2.0, batch=4)
    assert (s["n"], s["min_ms"], s["max_ms"]) == (100, 1.0, 100.0)
    assert s["mean_ms"] == pytest.approx(50.5) and s["median_ms"] == pytest.approx(50.5)
    assert s["p90_ms"] == pytest.approx(90.1) and s["p95_ms"] == pytest.approx(95.05)
    assert s["p99_ms"] == pytest.approx(99.01)
    assert s["cv_percent"] == pytest.approx(100 * statistics.pstdev(samples) / 50.5)
    assert s["throughput_qps"] == pytest.approx(50.0) and s["throughput_ips"] == pytest.approx(200.0)


def test_summary_of_a_constant_sample_has_no_variation():
    s = benchmark.summarize([2.0] * 10, wall_s=0.02)
    assert s["cv_percent"] == 0.0 and s["p99_ms"] == 2.0 and s["throughput_qps"] == pytest.approx(500.0)


class CountingEngine:
    """Stands in for an engine: counts calls, returns its input."""

    backend = "counting"

    def __init__(self):
        self.calls = 0

    def run(self, x):
        self.calls += 1
        return x


def test_run_warms_up_then_meets_the_iteration_minimum():
    engine = CountingEngine()
    settings = benchmark.BenchmarkSettings(warmup_s=0.0, iterations=50, duration_s=0.0)
    result = benchmark.run(engine, np.zeros((1, 1, 4, 4), np.float32), settings)
    assert result["warmup_runs"] == 1 and result["iterations"] == 50
    assert engine.calls == 51 and len(result["latencies_ms"]) == 50 and result["summary"]["n"] == 50
    assert result["summary"]["min_ms"] <= result["summary"]["median_ms"] <= result["summary"]["max_ms"]


def test_run_on_a_real_engine_writes_json(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(qdq_model(), path)
    result = benchmark.run(load_engine(path), np.zeros((1, 1, 4, 4), np.float32),
                           benchmark.BenchmarkSettings(warmup_s=0.0, iterations=20, duration_s=0.0))
    out = benchmark.write(result, tmp_path / "benchmark.json")
    text = out.read_text()
    assert '"backend": "onnxruntime"' in text and '"p95_ms"' in text and '"samples"' not in text


def test_settings_name_bad_fields():
    from hilci.util.settings import build

    def read(data):
        return build(benchmark.BenchmarkSettings, data, file="hilci.yaml", prefix="convert.benchmark.")

    assert read({"iterations": 5}).iterations == 5
    with pytest.raises(ValueError, match="hilci.yaml: convert.benchmark.warmup: unknown setting .did you mean 'warmup_s'"):
        read({"warmup": 1})
    with pytest.raises(ValueError, match="convert.benchmark.iterations: expected a whole number >= 1"):
        read({"iterations": 0})


def test_parity_counts_agreement_and_tolerances():
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [1.0, 1.5]])
    act = np.array([[1.0, 0.0], [0.0, 1.0005], [2.0, 1.0], [1.6, 1.5]])
    p = parity.compare(ref, act, atol=1e-3, rtol=1e-3, step=np.array([0.1, 0.1]), labels=np.array([0, 1, 0, 1]))
    assert p.n == 4 and p.agreement == 0.75
    assert p.max_abs == pytest.approx(0.6) and p.mismatched == 1  # 0.0005 is within atol
    assert p.max_steps == pytest.approx(6.0)
    assert p.reference_accuracy == 1.0 and p.engine_accuracy == 0.75


def test_parity_rejects_different_shapes():
    with pytest.raises(ValueError, match="output shapes differ"):
        parity.compare(np.zeros((2, 3)), np.zeros((2, 4)))


def test_output_step_is_input_scale_times_weight_scale():
    model = qdq_model()
    step = parity.output_step(model)
    values = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    np.testing.assert_allclose(step, 0.05 * values["fc.wq.scale"].astype(np.float64))
