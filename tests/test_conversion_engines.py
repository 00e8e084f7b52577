"""Engine backends: ONNX Runtime for real; TensorRT's capability detection, settings and error paths."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest

from hilci.conversion import manifest
from hilci.conversion.engines import EngineError, build_engine, load_engine
from hilci.conversion.engines import tensorrt as trt_backend
from tests.test_conversion_lint import qdq_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def model_path(tmp_path) -> Path:
    path = tmp_path / "model.onnx"
    onnx.save(qdq_model(), path)
    return path


def test_onnx_engine_runs_a_batch_and_reports_its_input_shape(model_path):
    engine = load_engine(model_path)
    assert engine.backend == "onnxruntime" and engine.input_shape == (1, 1, 4, 4)
    x = np.random.RandomState(0).rand(5, 1, 4, 4).astype(np.float32)
    out = engine.run(x)
    assert out.shape == (5, 3) and out.dtype == np.float32
    np.testing.assert_allclose(engine.run(x[:1]), out[:1], rtol=1e-5, atol=1e-6)


def test_wrong_input_shape_names_the_engine_and_the_shape_it_wants(model_path):
    with pytest.raises(EngineError, match=r"model.onnx: input shape 2x1x5x4 .* Nx1x4x4"):
        load_engine(model_path).run(np.zeros((2, 1, 5, 4), np.float32))


def test_truncated_onnx_is_one_clear_error(model_path, tmp_path):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(model_path.read_bytes()[:200])
    with pytest.raises(EngineError, match="cut.onnx: not a loadable ONNX model"):
        load_engine(cut)


def test_unknown_suffix_and_missing_file_are_errors(tmp_path):
    with pytest.raises(EngineError, match="unknown engine type '.bin'"):
        load_engine(tmp_path / "engine.bin")
    with pytest.raises(EngineError, match="no such engine file"):
        load_engine(tmp_path / "engine.onnx")


def test_build_onnxruntime_engine_writes_engine_and_manifest(model_path, tmp_path):
    out = build_engine(model_path, "onnxruntime", tmp_path / "convert", {"intra_op_threads": 1},
                       root=tmp_path)
    assert out == tmp_path / "convert" / "engine.onnx"
    doc = manifest.read_manifest(out)
    assert doc["kind"] == "engine" and doc["sha256"] == manifest.sha256_file(out)
    assert doc["settings"]["backend"] == "onnxruntime" and doc["settings"]["intra_op_threads"] == 1
    assert doc["inputs"]["onnx"] == {"path": "model.onnx", "sha256": manifest.sha256_file(model_path)}
    assert "onnxruntime" in doc["versions"]


def test_build_rejects_unknown_backend_and_settings(model_path, tmp_path):
    with pytest.raises(EngineError, match="unknown backend 'openvino'"):
        build_engine(model_path, "openvino", tmp_path)
    with pytest.raises(EngineError, match="unknown threads"):
        build_engine(model_path, "onnxruntime", tmp_path, {"threads": 2})


def test_build_rejects_invalid_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx at all")
    with pytest.raises(EngineError, match="bad.onnx: invalid ONNX model"):
        build_engine(bad, "onnxruntime", tmp_path / "out")


def test_tensorrt_asked_without_it_is_one_clear_error(model_path, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as on a machine without TensorRT
    with pytest.raises(EngineError, match="TensorRT is not installed"):
        build_engine(model_path, "tensorrt", tmp_path)
    plan = tmp_path / "engine.plan"
    plan.write_bytes(b"x")
    with pytest.raises(EngineError, match="TensorRT is not installed"):
        load_engine(plan)


def test_engine_modules_import_neither_torch_nor_modelopt(model_path):
    code = (
        "import sys, numpy as np\n"
        "import hilci.conversion.engines.tensorrt, hilci.conversion.benchmark, hilci.conversion.lint, hilci.conversion.parity\n"
        "import hilci.conversion.manifest, hilci.conversion.trace, hilci.conversion.cli, hilci.conversion.data\n"
        "from hilci.conversion.engines import load_engine, build_engine\n"
        f"e = load_engine({str(model_path)!r}); e.run(np.zeros((1, 1, 4, 4), np.float32))\n"
        "print(sorted(m for m in ('torch', 'modelopt') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _fake_trt(version: str, *, flags: bool, strongly_typed: bool, calibrators: bool):
    """An object shaped like the tensorrt module, for feature detection only."""
    mod = types.SimpleNamespace(__version__=version)
    mod.BuilderFlag = types.SimpleNamespace(**({"FP16": 0, "INT8": 1} if flags else {}), TF32=2)
    net = {"EXPLICIT_BATCH": 0} if version.startswith(("8.", "10.")) else {}
    if strongly_typed:
        net["STRONGLY_TYPED"] = 1
    mod.NetworkDefinitionCreationFlag = types.SimpleNamespace(**net)
    if calibrators:
        mod.IInt8EntropyCalibrator2 = object
    mod.IBuilderConfig = types.SimpleNamespace(create_timing_cache=None)
    mod.ICudaEngine = types.SimpleNamespace(create_engine_inspector=None)
    mod.LayerInformationFormat = types.SimpleNamespace(JSON=1, ONELINE=0)
    return mod


TRT_10_3 = _fake_trt("10.3.0", flags=True, strongly_typed=True, calibrators=True)
TRT_11 = _fake_trt("11.0.0", flags=False, strongly_typed=False, calibrators=False)
TRT_8_6 = _fake_trt("8.6.1", flags=True, strongly_typed=False, calibrators=True)


def test_capabilities_tell_tensorrt_10_from_11_by_feature():
    c10, c11, c8 = (trt_backend.detect(m) for m in (TRT_10_3, TRT_11, TRT_8_6))
    assert c10.precision_flags and c10.strongly_typed_flag and not c10.strongly_typed_only
    assert c11.strongly_typed_only and not c11.int8_calibrators
    assert c8.explicit_batch_flag and not c10.explicit_batch_flag
    assert c10.timing_cache and c10.engine_inspector and c10.layer_info_json


def test_auto_typing_is_weak_on_10_and_strong_on_11():
    weak = trt_backend.resolve_settings({}, trt_backend.detect(TRT_10_3))
    strong = trt_backend.resolve_settings({}, trt_backend.detect(TRT_11))
    assert (weak["typing"], weak["int8"], weak["fp16"]) == ("weak", True, True)
    assert (strong["typing"], strong["int8"], strong["fp16"]) == ("strong", False, False)


def test_weak_typing_on_11_and_bad_settings_are_named():
    caps11 = trt_backend.detect(TRT_11)
    with pytest.raises(EngineError, match="typing 'weak' needs FP16/INT8 builder flags.*11.0.0"):
        trt_backend.resolve_settings({"typing": "weak"}, caps11)
    with pytest.raises(EngineError, match="cannot build strongly typed"):
        trt_backend.resolve_settings({"typing": "strong"}, trt_backend.detect(TRT_8_6))
    with pytest.raises(EngineError, match="unknown precision"):
        trt_backend.resolve_settings({"precision": "int8"}, caps11)
    with pytest.raises(EngineError, match="workspace_mib must be a positive integer"):
        trt_backend.resolve_settings({"workspace_mib": 0}, caps11)
    with pytest.raises(EngineError, match="builder_optimization_level must be 0..5"):
        trt_backend.resolve_settings({"builder_optimization_level": 9}, caps11)


def test_network_flags_follow_capabilities():
    assert trt_backend._network_flags(TRT_10_3, trt_backend.detect(TRT_10_3), "strong") == 1 << 1
    assert trt_backend._network_flags(TRT_10_3, trt_backend.detect(TRT_10_3), "weak") == 0
    assert trt_backend._network_flags(TRT_8_6, trt_backend.detect(TRT_8_6), "weak") == 1


def test_timing_cache_is_loaded_from_file_and_mismatch_is_an_error(tmp_path):
    class Config:
        def __init__(self, accept: bool):
            self.accept, self.seen = accept, None

        def create_timing_cache(self, data: bytes):
            self.seen = data
            return ("cache", data)

        def set_timing_cache(self, cache, ignore_mismatch: bool):
            return self.accept and not ignore_mismatch

    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"tactics")
    config = Config(accept=True)
    assert trt_backend._load_timing_cache(config, cache) == 7 and config.seen == b"tactics"
    assert trt_backend._load_timing_cache(Config(True), tmp_path / "none.cache") == 0
    with pytest.raises(EngineError, match="timing.cache: timing cache does not match"):
        trt_backend._load_timing_cache(Config(accept=False), cache)


def test_layer_timer_sums_profiler_reports():
    class IProfiler:
        def __init__(self):
            pass

    timer = trt_backend.LayerTimer(types.SimpleNamespace(IProfiler=IProfiler))
    for ms in (1.0, 3.0):
        timer.profiler.report_layer_time("conv1", ms)
    timer.profiler.report_layer_time("fc", 0.5)
    assert timer.mean_ms() == {"conv1": 2.0, "fc": 0.5}
    assert json.dumps(timer.mean_ms())
