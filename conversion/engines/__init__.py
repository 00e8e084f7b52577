"""Engine backends behind one small interface: build an engine from ONNX (with its manifest), load it, run it.

The backend follows the file: `.onnx` runs in ONNX Runtime (the ONNX file is the engine), `.plan`/`.engine`
in TensorRT. These modules import neither torch nor modelopt: a Jetson runs them with JetPack's own builds,
and the HIL latency suites call `load_engine` directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hilci.conversion.engines.base import (  # noqa: F401  (the engines' interface, named here for callers)
    BACKENDS,
    ONNXRUNTIME,
    SUFFIXES,
    TENSORRT,
    Engine,
    EngineError,
    check_input,
)


def backend_for(path: Path) -> str:
    """The backend that runs a file, chosen by its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        known = ", ".join(sorted(SUFFIXES))
        raise EngineError(f"{path}: unknown engine type {suffix or '(no suffix)'!r} (known: {known})")
    return SUFFIXES[suffix]


def check_backend(name: str, where: str = "backend") -> str:
    """`name` if it is a known backend, else an EngineError naming the field and the choices."""
    if name not in BACKENDS:
        raise EngineError(f"{where}: unknown backend {name!r} (choose one of: {', '.join(BACKENDS)})")
    return name


def load_engine(path: Path | str, **options: Any) -> Engine:
    """Load an engine file with the backend its suffix names (`.onnx` ONNX Runtime, `.plan`/`.engine` TensorRT)."""
    path = Path(path)
    backend = backend_for(path)
    if not path.is_file():
        raise EngineError(f"{path}: no such engine file")
    if backend == ONNXRUNTIME:
        from hilci.conversion.engines.onnxruntime import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path, **options)
    from hilci.conversion.engines.tensorrt import TensorRTEngine

    return TensorRTEngine(path, **options)


def build_engine(onnx_path: Path | str, backend: str, out_dir: Path | str,
                 settings: Mapping[str, Any] | None = None, *, inputs: Mapping[str, Any] | None = None,
                 root: Path | None = None) -> Path:
    """Build an engine for `backend` from an ONNX file into `out_dir`, write its manifest, return its path.

    `inputs` adds lineage records to the manifest (the ONNX file itself is always recorded).
    """
    check_backend(backend)
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise EngineError(f"{onnx_path}: no such ONNX file")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if backend == ONNXRUNTIME:
        from hilci.conversion.engines import onnxruntime as impl
    else:
        from hilci.conversion.engines import tensorrt as impl
    return impl.build(onnx_path, out_dir, dict(settings or {}), inputs=dict(inputs or {}), root=root)


def available_backends() -> list[str]:
    """Backends whose runtime is importable here (TensorRT only on a machine with it installed)."""
    import importlib.util

    found = [ONNXRUNTIME] if importlib.util.find_spec("onnxruntime") else []
    if importlib.util.find_spec("tensorrt"):
        found.append(TENSORRT)
    return found
