"""The TensorRT backend for Jetson: build a plan from Q/DQ ONNX, load it, run it with device buffers.

Written to the documented Python API of TensorRT 10.3 (JetPack 6: weakly typed, FP16/INT8 builder flags) and
TensorRT 11 (strongly typed only, no precision flags, no INT8 calibrators), told apart by feature detection,
never by version string. `tensorrt` and the CUDA bindings are imported only when this backend is used.
Device buffers come from cuda-python (as NVIDIA's samples use); pycuda is the fallback where it is missing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hilci.conversion import manifest
from hilci.conversion.engines.base import TENSORRT, EngineError, check_input
from hilci.util.extras import MissingExtra, require

ENGINE_NAME = "engine.plan"
LAYERS_SUFFIX = ".layers.json"
TIMING_CACHE_NAME = "timing.cache"
SETTINGS: dict[str, Any] = {
    "typing": "auto",          # auto | strong | weak (weak = TensorRT 10.x precision flags)
    "fp16": True,              # weak typing only: let non-quantized layers run in FP16
    "int8": True,              # weak typing only: run the Q/DQ layers in INT8 (explicit quantization)
    "workspace_mib": 256,
    "builder_optimization_level": 3,
    "max_batch": 8,            # optimization profile for a dynamic batch: min 1, opt 1, max this
    "timing_cache": None,      # path of the persisted timing cache; None = <out_dir>/timing.cache
}


def import_tensorrt():
    """The tensorrt module, or an EngineError saying it is not installed on this machine."""
    try:
        return require("tensorrt")
    except MissingExtra as exc:
        raise EngineError(f"tensorrt backend requested but TensorRT is not installed here ({exc}); "
                          "use backend: onnxruntime, or run this stage on a Jetson with JetPack") from None


@dataclass(frozen=True)
class Capabilities:
    """What this TensorRT can do, found by feature detection rather than version numbers."""

    version: str
    precision_flags: bool      # BuilderFlag.FP16/INT8 exist (10.x); gone in 11 (strongly typed only)
    strongly_typed_flag: bool  # NetworkDefinitionCreationFlag.STRONGLY_TYPED exists
    explicit_batch_flag: bool  # networks must ask for explicit batch (before 10.0)
    int8_calibrators: bool     # IInt8EntropyCalibrator2 exists (removed in 11)
    timing_cache: bool         # IBuilderConfig.create_timing_cache
    engine_inspector: bool     # ICudaEngine.create_engine_inspector
    layer_info_json: bool      # LayerInformationFormat.JSON

    @property
    def strongly_typed_only(self) -> bool:
        return not self.precision_flags


def detect(trt) -> Capabilities:
    """Capabilities of a tensorrt module (or any object shaped like one)."""
    flags = getattr(trt, "BuilderFlag", None)
    net_flags = getattr(trt, "NetworkDefinitionCreationFlag", None)
    version = str(getattr(trt, "__version__", "unknown"))
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 99
    return Capabilities(
        version=version,
        precision_flags=hasattr(flags, "FP16") and hasattr(flags, "INT8"),
        strongly_typed_flag=hasattr(net_flags, "STRONGLY_TYPED"),
        explicit_batch_flag=hasattr(net_flags, "EXPLICIT_BATCH") and major < 10,
        int8_calibrators=hasattr(trt, "IInt8EntropyCalibrator2"),
        timing_cache=hasattr(getattr(trt, "IBuilderConfig", None), "create_timing_cache"),
        engine_inspector=hasattr(getattr(trt, "ICudaEngine", None), "create_engine_inspector"),
        layer_info_json=hasattr(getattr(trt, "LayerInformationFormat", None), "JSON"),
    )


def resolve_settings(settings: dict[str, Any], caps: Capabilities) -> dict[str, Any]:
    """Defaults merged with `settings`, typing resolved for this TensorRT; EngineError naming a bad field."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise EngineError(f"tensorrt settings: unknown {', '.join(unknown)} (known: {', '.join(SETTINGS)})")
    merged = {**SETTINGS, **settings}
    typing = merged["typing"]
    if typing not in ("auto", "strong", "weak"):
        raise EngineError(f"tensorrt settings: typing {typing!r} is not one of auto, strong, weak")
    if typing == "auto":
        typing = "weak" if caps.precision_flags else "strong"
    if typing == "weak" and not caps.precision_flags:
        raise EngineError(f"tensorrt settings: typing 'weak' needs FP16/INT8 builder flags, which TensorRT "
                          f"{caps.version} removed (strongly typed only); use typing: strong")
    if typing == "strong" and caps.precision_flags and not caps.strongly_typed_flag:
        raise EngineError(f"tensorrt settings: TensorRT {caps.version} cannot build strongly typed networks")
    for key in ("workspace_mib", "max_batch"):
        if not isinstance(merged[key], int) or merged[key] < 1:
            raise EngineError(f"tensorrt settings: {key} must be a positive integer, not {merged[key]!r}")
    level = merged["builder_optimization_level"]
    if not isinstance(level, int) or not 0 <= level <= 5:
        raise EngineError(f"tensorrt settings: builder_optimization_level must be 0..5, not {level!r}")
    merged["typing"] = typing
    if typing == "strong":  # precision comes from the network itself
        merged["fp16"] = merged["int8"] = False
    return merged


def _network_flags(trt, caps: Capabilities, typing: str) -> int:
    flags = 0
    if caps.explicit_batch_flag:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if typing == "strong" and caps.strongly_typed_flag:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags


def _parse(trt, network, logger, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineError(f"{onnx_path}: TensorRT's ONNX parser rejected it ({'; '.join(errors) or 'no detail'})")


def _load_timing_cache(config, path: Path):
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        raise EngineError(f"{path}: timing cache does not match this TensorRT/GPU; delete it to rebuild")
    return len(data)


def build(onnx_path: Path, out_dir: Path, settings: dict[str, Any], *, inputs: dict[str, Any],
          root: Path | None) -> Path:
    """Build `out_dir/engine.plan` with a reused timing cache, save the inspector's JSON, write the manifest."""
    trt = import_tensorrt()
    caps = detect(trt)
    merged = resolve_settings(settings, caps)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt, caps, merged["typing"]))
    _parse(trt, network, logger, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, merged["workspace_mib"] << 20)
    config.builder_optimization_level = merged["builder_optimization_level"]
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer names for the profiler/inspector
    if merged["typing"] == "weak":
        if merged["int8"]:
            config.set_flag(trt.BuilderFlag.INT8)
        if merged["fp16"]:
            config.set_flag(trt.BuilderFlag.FP16)
    for i in range(network.num_inputs):  # one profile covering batch 1..max_batch for dynamic inputs
        tensor = network.get_input(i)
        shape = tuple(tensor.shape)
        if any(d < 0 for d in shape):
            if any(d < 0 for d in shape[1:]):
                raise EngineError(f"{onnx_path}: input {tensor.name} is dynamic beyond the batch {shape}")
            profile = builder.create_optimization_profile()
            profile.set_shape(tensor.name, (1, *shape[1:]), (1, *shape[1:]), (merged["max_batch"], *shape[1:]))
            config.add_optimization_profile(profile)
    cache_path = Path(merged["timing_cache"] or out_dir / TIMING_CACHE_NAME)
    cache_bytes_in = _load_timing_cache(config, cache_path) if caps.timing_cache else 0
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"{onnx_path}: TensorRT {caps.version} failed to build an engine (see its log above)")
    out = out_dir / ENGINE_NAME
    out.write_bytes(bytes(plan))
    if caps.timing_cache:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    layers = save_layer_info(trt, caps, out, logger)
    gpu, cuda_version = device_properties()
    recorded = {**merged, "backend": TENSORRT, "timing_cache": str(cache_path),
                "timing_cache_reused_bytes": cache_bytes_in, "tensorrt": caps.version, "cuda": cuda_version,
                "capabilities": asdict(caps), "layer_info": layers.name if layers else None}
    manifest.write_manifest(out, "engine", inputs={"onnx": onnx_path, **inputs}, settings=recorded,
                            gpu=gpu, root=root)
    return out


def save_layer_info(trt, caps: Capabilities, plan_path: Path, logger) -> Path | None:
    """The engine inspector's per-layer JSON beside the plan (`engine.plan.layers.json`)."""
    if not (caps.engine_inspector and caps.layer_info_json):
        return None
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(plan_path.read_bytes())
    inspector = engine.create_engine_inspector()
    info = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    out = plan_path.with_name(plan_path.name + LAYERS_SUFFIX)
    out.write_text(json.dumps(json.loads(info), indent=1))
    return out


# --- device memory: cuda-python first, pycuda as the alternative -------------------------------------------

class CudaPythonMemory:
    """Device buffers and a stream through cuda-python's runtime bindings."""

    name = "cuda-python"

    def __init__(self) -> None:
        try:
            from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
        except ImportError:
            from cuda import cudart  # older cuda-python
        self.cudart = cudart
        self.stream = self._ok(cudart.cudaStreamCreate())

    def _ok(self, result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise EngineError(f"CUDA error {err}")
        return rest[0] if len(rest) == 1 else rest

    def alloc(self, nbytes: int) -> int:
        return int(self._ok(self.cudart.cudaMalloc(nbytes)))

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._ok(self.cudart.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, kind, self.stream))

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._ok(self.cudart.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, kind, self.stream))

    @property
    def stream_handle(self) -> int:
        return int(self.stream)

    def synchronize(self) -> None:
        self._ok(self.cudart.cudaStreamSynchronize(self.stream))

    def free(self, ptr: int) -> None:
        self.cudart.cudaFree(ptr)


class PyCudaMemory:
    """The same through pycuda, for machines without cuda-python."""

    name = "pycuda"

    def __init__(self) -> None:
        require("pycuda.autoinit")  # creates the context
        drv = require("pycuda.driver")

        self.drv = drv
        self.stream = drv.Stream()
        self._allocs: dict[int, Any] = {}

    def alloc(self, nbytes: int) -> int:
        mem = self.drv.mem_alloc(nbytes)
        self._allocs[int(mem)] = mem
        return int(mem)

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        self.drv.memcpy_htod_async(ptr, host, self.stream)

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        self.drv.memcpy_dtoh_async(host, ptr, self.stream)

    @property
    def stream_handle(self) -> int:
        return self.stream.handle

    def synchronize(self) -> None:
        self.stream.synchronize()

    def free(self, ptr: int) -> None:
        mem = self._allocs.pop(ptr, None)
        if mem is not None:
            mem.free()


def device_memory():
    """cuda-python if installed, else pycuda, else an EngineError saying neither is."""
    import importlib.util

    if importlib.util.find_spec("cuda") is not None:
        return CudaPythonMemory()
    if importlib.util.find_spec("pycuda") is not None:
        return PyCudaMemory()
    raise EngineError("tensorrt backend needs device buffers: install cuda-python (or pycuda)")


def device_properties() -> tuple[dict[str, str] | None, str]:
    """GPU name and compute capability, and the CUDA runtime version, through cuda-python when present."""
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
    except ImportError:
        return None, "unknown"
    err, props = cudart.cudaGetDeviceProperties(0)
    err_v, version = cudart.cudaRuntimeGetVersion()
    gpu = None
    if int(err) == 0:
        name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
        gpu = {"name": name.rstrip("\0"), "compute_capability": f"{props.major}.{props.minor}"}
    cuda = f"{version // 1000}.{(version % 1000) // 10}" if int(err_v) == 0 else "unknown"
    return gpu, cuda


class LayerTimer:
    """Per-layer times reported by TensorRT's IProfiler, summed over the runs it watched."""

    def __init__(self, trt) -> None:
        base = trt.IProfiler
        timer = self

        class _Profiler(base):
            def __init__(self) -> None:
                base.__init__(self)

            def report_layer_time(self, layer_name: str, ms: float) -> None:
                timer.totals[layer_name] = timer.totals.get(layer_name, 0.0) + ms
                timer.counts[layer_name] = timer.counts.get(layer_name, 0) + 1

        self.totals: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.profiler = _Profiler()

    def mean_ms(self) -> dict[str, float]:
        return {name: self.totals[name] / self.counts[name] for name in self.totals}


class TensorRTEngine:
    """A deserialized TensorRT plan with one input, its first output, and device buffers for both."""

    backend = TENSORRT

    def __init__(self, path: Path, **_options: Any) -> None:
        trt = import_tensorrt()
        self.trt = trt
        self.path = Path(path)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise EngineError(f"{self.path}: not a TensorRT plan for this TensorRT/GPU (deserialization failed)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == mode]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) != mode]
        if len(inputs) != 1 or not outputs:
            raise EngineError(f"{self.path}: expected one input and an output, found {inputs} -> {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        dims = tuple(self.engine.get_tensor_shape(self.input_name))
        self.dynamic_batch = dims[0] < 0
        self.input_shape = (1 if self.dynamic_batch else dims[0], *dims[1:])
        self.memory = device_memory()
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (ptr, nbytes)

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                self.memory.free(ptr)
            ptr, size = self.memory.alloc(nbytes), nbytes
            self._buffers[name] = (ptr, size)
            self.context.set_tensor_address(name, ptr)
        return ptr

    def run(self, x: np.ndarray) -> np.ndarray:
        x = check_input(self.path, x, self.input_shape, self.dynamic_batch)
        self.context.set_input_shape(self.input_name, x.shape)
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        out = np.empty(out_shape, dtype=self.trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        in_ptr = self._buffer(self.input_name, x.nbytes)
        out_ptr = self._buffer(self.output_name, out.nbytes)
        self.memory.to_device(in_ptr, x)
        if not self.context.execute_async_v3(self.memory.stream_handle):
            raise EngineError(f"{self.path}: execute_async_v3 failed")
        self.memory.to_host(out, out_ptr)
        self.memory.synchronize()
        return out.astype(np.float32, copy=False)

    def layer_profile(self, x: np.ndarray, runs: int = 20) -> dict[str, float]:
        """Mean time per layer in ms over `runs` inferences, through IProfiler."""
        timer = LayerTimer(self.trt)
        self.context.profiler = timer.profiler
        try:
            for _ in range(runs):
                self.run(x)
        finally:
            self.context.profiler = None
        return timer.mean_ms()

    def __del__(self) -> None:
        for ptr, _ in getattr(self, "_buffers", {}).values():
            try:
                self.memory.free(ptr)
            except Exception:
                pass
