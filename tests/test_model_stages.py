"""The train, quantize and convert stages through `run_stage`: gates in JUnit, artifacts, manifests, bad input."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import yaml

from hilci.conversion import manifest, trace
from hilci.example import PIPELINE
from hilci.results import junit
from hilci.stage.run import EXIT_ERROR, EXIT_FAILED, EXIT_OK, run_stage
from tests.test_conversion_lint import qdq_model

pytestmark = [pytest.mark.pipeline]  # what it needs: the fast tier leaves it out

FAST = {"train": {"epochs": 3, "batch_size": 64, "learning_rate": 0.01, "min_accuracy": 0.8},
        "quantize": {"qat_epochs": 1, "max_drop_pp": 5.0},
        "convert": {"backend": "onnxruntime", "benchmark": {"warmup_s": 0.0, "iterations": 30, "duration_s": 0.0},
                    "budgets": {"p99_ms": 1000.0}}}


def _root(tmp_path, config):
    (tmp_path / "hilci.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def _cases(root, stage):
    return {c.name: c for c in junit.read_cases(root / "reports" / "junit" / f"{stage}.xml")}


@pytest.fixture(scope="module")
def pipeline_root(tmp_path_factory):
    """A small run of the three stages in a scratch root (modelopt's import alone takes seconds)."""
    root = _root(tmp_path_factory.mktemp("model"), FAST)
    codes = {s: run_stage(root, PIPELINE, s) for s in ("train", "quantize", "convert")}
    return root, codes


@pytest.mark.slow
def test_three_stages_pass_with_a_gate_per_testcase(pipeline_root):
    root, codes = pipeline_root
    assert codes == {"train": EXIT_OK, "quantize": EXIT_OK, "convert": EXIT_OK}
    train = _cases(root, "train")["accuracy"]
    assert train.status == "passed" and float(train.measurements["train.accuracy"]["value"]) >= 0.8
    q = _cases(root, "quantize")
    assert set(q) == {"drop", "lint", "parity"} and all(c.status == "passed" for c in q.values())
    drop = q["drop"].measurements
    assert drop["quantize.qat_drop"]["unit"] == "pp" and drop["quantize.qat_drop"]["high"] == "5.0"
    assert {"quantize.fp32_accuracy", "quantize.ptq_accuracy", "quantize.qat_accuracy"} <= set(drop)
    lint = q["lint"].measurements
    assert lint["quantize.lint.violations"]["value"] == "0.0" and lint["quantize.lint.q_nodes"]["value"] == "7.0"
    assert float(q["parity"].measurements["quantize.parity.agreement"]["value"]) >= 0.995
    c = _cases(root, "convert")
    assert set(c) == {"parity", "latency"}
    latency = c["latency"].measurements["convert.latency"]
    assert latency["gate"] == "p99" and latency["unit"] == "ms" and int(latency["n"]) >= 30


@pytest.mark.slow
def test_artifacts_have_manifests_and_the_engine_traces_to_data(pipeline_root):
    root, _ = pipeline_root
    for rel in ("artifacts/train/model.pt", "artifacts/quantize/model.onnx", "artifacts/quantize/reference.npz",
                "artifacts/convert/engine.onnx", "artifacts/convert/benchmark.json"):
        assert manifest.verify(root / rel), rel
    tree = trace.lineage(root / "artifacts/convert/engine.onnx", root)
    assert trace.problems(tree) == []
    text = trace.render(tree)
    assert "qdq-onnx artifacts/quantize/model.onnx" in text and "checkpoint artifacts/train/model.pt" in text
    assert "sklearn.datasets.load_digits" in text
    onnx_doc = manifest.read_manifest(root / "artifacts/quantize/model.onnx")
    assert {"checkpoint", "data", "code", "config"} <= set(onnx_doc["inputs"])
    assert onnx_doc["versions"]["nvidia-modelopt"] and onnx_doc["versions"]["torch"]
    # where each step computed, beside the machine's devices: a GPU pod's manifest must not imply a GPU QAT
    assert onnx_doc["metrics"]["qat_device"] == "cpu"


@pytest.mark.slow
def test_exported_model_is_qdq_and_runs_like_pytorch(pipeline_root):
    root, _ = pipeline_root
    model = onnx.load(str(root / "artifacts/quantize/model.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") == 7 and ops.count("DequantizeLinear") == 7
    from hilci.conversion.engines import load_engine

    ref = np.load(root / "artifacts/quantize/reference.npz")
    out = load_engine(root / "artifacts/convert/engine.onnx").run(ref["x"])
    assert (out.argmax(1) == ref["logits"].argmax(1)).mean() >= 0.995


@pytest.mark.slow
def test_a_tight_drop_gate_fails_the_stage_with_the_numbers(tmp_path, pipeline_root):
    src, _ = pipeline_root
    root = _root(tmp_path, {**FAST, "quantize": {"qat_epochs": 1, "max_drop_pp": -50.0}})
    (root / "artifacts/train").mkdir(parents=True)
    for name in ("model.pt", "model.pt.manifest.json"):
        (root / "artifacts/train" / name).write_bytes((src / "artifacts/train" / name).read_bytes())
    assert run_stage(root, PIPELINE, "quantize") == EXIT_FAILED
    drop = _cases(root, "quantize")["drop"]
    assert drop.status == "failed" and "above limit -50 pp" in drop.message


def _error(root, stage):
    cases = list(_cases(root, stage).values())
    assert len(cases) == 1 and cases[0].status == "error"
    return cases[0].message


def test_missing_checkpoint_is_an_error_testcase(tmp_path):
    root = _root(tmp_path, FAST)
    assert run_stage(root, PIPELINE, "quantize") == EXIT_ERROR
    assert "artifacts/train/model.pt: checkpoint missing" in _error(root, "quantize")


def _quantized(root, model=None):
    out = root / "artifacts/quantize"
    out.mkdir(parents=True)
    onnx.save(model or qdq_model(), out / "model.onnx")
    x = np.random.RandomState(0).rand(20, 1, 4, 4).astype(np.float32)
    from hilci.conversion.engines import load_engine

    np.savez(out / "reference.npz", x=x, y=np.zeros(20, np.int64), logits=load_engine(out / "model.onnx").run(x))


def test_convert_on_a_built_model_passes_without_torch(tmp_path):
    root = _root(tmp_path, FAST)
    _quantized(root)
    assert run_stage(root, PIPELINE, "convert") == EXIT_OK
    parity = _cases(root, "convert")["parity"].measurements
    assert parity["convert.parity.agreement"]["value"] == "1.0"
    assert (root / "artifacts/convert/engine.onnx.manifest.json").is_file()
    assert (root / "artifacts/convert/benchmark.json.manifest.json").is_file()


def test_truncated_onnx_is_an_error_naming_it(tmp_path):
    root = _root(tmp_path, FAST)
    _quantized(root)
    path = root / "artifacts/quantize/model.onnx"
    path.write_bytes(path.read_bytes()[:100])
    assert run_stage(root, PIPELINE, "convert") == EXIT_ERROR
    assert "artifacts/quantize/model.onnx" in _error(root, "convert")


def test_asymmetric_qdq_is_an_error_naming_node_and_rule(tmp_path):
    root = _root(tmp_path, FAST)
    _quantized(root, qdq_model(act_zero=4))
    assert run_stage(root, PIPELINE, "convert") == EXIT_ERROR
    message = _error(root, "convert")
    assert "model.onnx: not TensorRT-compatible" in message and "node input/Q: zero-point" in message


@pytest.mark.parametrize("backend,expected", [("openvino", "hilci.yaml: convert.backend: 'openvino' is not one of auto"),
                                              ("tensorrt", "TensorRT is not installed")])
def test_unknown_or_unavailable_backend_is_an_error(tmp_path, monkeypatch, backend, expected):
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", None)
    root = _root(tmp_path, {**FAST, "convert": {"backend": backend}})
    _quantized(root)
    assert run_stage(root, PIPELINE, "convert") == EXIT_ERROR
    assert expected in _error(root, "convert")


def test_bad_setting_names_the_field(tmp_path):
    root = _root(tmp_path, {"train": {"epochs": "many"}})
    assert run_stage(root, PIPELINE, "train") == EXIT_ERROR
    assert "hilci.yaml: train.epochs: expected a whole number >= 1" in _error(root, "train")
