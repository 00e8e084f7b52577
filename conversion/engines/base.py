"""What every engine backend shares: the backend names, the `Engine` interface, its error and the input check."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from hilci.errors import StageError

ONNXRUNTIME = "onnxruntime"
TENSORRT = "tensorrt"
BACKENDS = (ONNXRUNTIME, TENSORRT)
SUFFIXES = {".onnx": ONNXRUNTIME, ".plan": TENSORRT, ".engine": TENSORRT}


class EngineError(StageError):
    """An engine cannot be built, loaded or run; the message names the file and what is wrong."""


class Engine(Protocol):
    """A loaded engine: one float32 input batch in, the first output out."""

    backend: str
    path: Path
    input_name: str
    input_shape: tuple[int, ...]  # one accepted batch shape; a dynamic batch dimension reads as 1

    def run(self, x: np.ndarray) -> np.ndarray: ...


def check_input(path: Path, x: np.ndarray, expected: tuple[int, ...], dynamic_batch: bool) -> np.ndarray:
    """The input as contiguous float32, or an EngineError naming the engine and the shape it wants."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != len(expected) or tuple(x.shape[1:]) != tuple(expected[1:]) or (
            not dynamic_batch and x.shape[0] != expected[0]):
        want = ("N" if dynamic_batch else str(expected[0])) + "".join(f"x{d}" for d in expected[1:])
        raise EngineError(f"{path}: input shape {'x'.join(map(str, x.shape))} does not match the engine's {want}")
    return x
