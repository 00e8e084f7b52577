"""The ONNX Runtime backend: the ONNX file is the engine; "building" validates it and records how it runs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from hilci.conversion import manifest
from hilci.conversion.engines.base import ONNXRUNTIME, EngineError, check_input
from hilci.util.extras import require

ENGINE_NAME = "engine.onnx"
SETTINGS = {"intra_op_threads": 0, "graph_optimization": "all", "providers": "auto"}
_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}


def settings_of(settings: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged with `settings`; an unknown name or value is an EngineError naming it."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise EngineError(f"onnxruntime settings: unknown {', '.join(unknown)} (known: {', '.join(SETTINGS)})")
    merged = {**SETTINGS, **settings}
    if merged["graph_optimization"] not in _LEVELS:
        raise EngineError(f"onnxruntime settings: graph_optimization {merged['graph_optimization']!r} is not one of "
                          f"{', '.join(_LEVELS)}")
    if not isinstance(merged["intra_op_threads"], int) or merged["intra_op_threads"] < 0:
        raise EngineError("onnxruntime settings: intra_op_threads must be an integer >= 0 (0 = all cores)")
    return merged


def _providers(ort, wanted: Any) -> list[str]:
    available = ort.get_available_providers()
    if wanted in (None, "auto"):
        order = ("CUDAExecutionProvider", "CPUExecutionProvider")
        return [p for p in order if p in available] or ["CPUExecutionProvider"]
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    missing = [p for p in wanted if p not in available]
    if missing:
        raise EngineError(f"onnxruntime settings: providers {', '.join(missing)} not available "
                          f"(available: {', '.join(available)})")
    return wanted


class OnnxRuntimeEngine:
    """An ONNX model in an ONNX Runtime session, on the best available provider."""

    backend = ONNXRUNTIME

    def __init__(self, path: Path, **settings: Any) -> None:
        ort = require("onnxruntime")

        self.path = Path(path)
        self.settings = settings_of(settings)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.settings["intra_op_threads"]
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                                   _LEVELS[self.settings["graph_optimization"]])
        options.log_severity_level = 3
        self.providers = _providers(ort, self.settings["providers"])
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=self.providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/InvalidGraph types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EngineError(f"{self.path}: not a loadable ONNX model ({first})") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise EngineError(f"{self.path}: expected one input, found {len(inputs)}")
        self.input_name = inputs[0].name
        dims = inputs[0].shape
        self.dynamic_batch = not isinstance(dims[0], int)
        if any(not isinstance(d, int) for d in dims[1:]):
            raise EngineError(f"{self.path}: input {self.input_name} has dynamic dimensions {dims} beyond the batch")
        self.input_shape = (1 if self.dynamic_batch else dims[0], *dims[1:])
        self.output_name = self.session.get_outputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        x = check_input(self.path, x, self.input_shape, self.dynamic_batch)
        return self.session.run([self.output_name], {self.input_name: x})[0]


def validate_onnx(path: Path) -> None:
    """Full `onnx.checker` check; a truncated or corrupt file is an EngineError naming it."""
    onnx = require("onnx")

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(f"{path}: invalid ONNX model ({first})") from None


def build(onnx_path: Path, out_dir: Path, settings: dict[str, Any], *, inputs: dict[str, Any],
          root: Path | None) -> Path:
    """Check the ONNX file, copy it to `out_dir/engine.onnx`, load it once, write its manifest."""
    ort = require("onnxruntime")

    merged = settings_of(settings)
    validate_onnx(onnx_path)
    out = out_dir / ENGINE_NAME
    if out.resolve() != onnx_path.resolve():
        shutil.copyfile(onnx_path, out)
    engine = OnnxRuntimeEngine(out, **merged)
    recorded = {**merged, "backend": ONNXRUNTIME, "providers": engine.providers,
                "onnxruntime": ort.__version__, "input_shape": list(engine.input_shape),
                "dynamic_batch": engine.dynamic_batch}
    manifest.write_manifest(out, "engine", inputs={"onnx": onnx_path, **inputs}, settings=recorded, root=root)
    return out
