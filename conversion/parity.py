"""Parity of an engine's outputs against PyTorch's: same class, and how far apart, as polygraphy reports it.

An element mismatches only when it exceeds both the absolute and the relative tolerance (polygraphy's
element-wise check). The largest difference is also given in quantization steps of the output: for a final
Gemm/Conv fed by DequantizeLinear nodes, one step of output channel c is input_scale * weight_scale[c].
No torch here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Parity:
    """How an engine's outputs compare with the reference outputs on the same inputs."""

    n: int
    agreement: float          # fraction of samples with the same top-1 class
    max_abs: float
    mean_abs: float
    max_rel: float
    atol: float
    rtol: float
    mismatched: int           # elements beyond both tolerances
    max_steps: float | None   # largest difference in output quantization steps (None: no Q/DQ output step)
    engine_accuracy: float | None = None
    reference_accuracy: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def compare(reference: np.ndarray, actual: np.ndarray, *, atol: float = 1e-3, rtol: float = 1e-3,
            step: np.ndarray | None = None, labels: np.ndarray | None = None) -> Parity:
    """Compare N x C logits; `step` is the per-channel output step (length C or scalar) when known."""
    reference = np.asarray(reference, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if reference.shape != actual.shape:
        raise ValueError(f"output shapes differ: reference {reference.shape}, engine {actual.shape}")
    absdiff = np.abs(actual - reference)
    reldiff = absdiff / np.maximum(np.abs(reference), np.finfo(np.float32).tiny)
    steps = float((absdiff / np.asarray(step, dtype=np.float64)).max()) if step is not None else None
    agree = reference.argmax(axis=1) == actual.argmax(axis=1)
    return Parity(
        n=len(reference), agreement=float(agree.mean()), max_abs=float(absdiff.max()),
        mean_abs=float(absdiff.mean()), max_rel=float(reldiff.max()), atol=atol, rtol=rtol,
        mismatched=int(((absdiff > atol) & (reldiff > rtol)).sum()), max_steps=steps,
        engine_accuracy=float((actual.argmax(1) == labels).mean()) if labels is not None else None,
        reference_accuracy=float((reference.argmax(1) == labels).mean()) if labels is not None else None,
    )


def output_step(model) -> np.ndarray | None:
    """Per-channel quantization step of the graph output, from the DQ scales feeding its producer."""
    from hilci.conversion.lint import constants

    graph = model.graph
    values = constants(graph)
    producer = {out: node for node in graph.node for out in node.output}
    last = producer.get(graph.output[0].name)
    if last is None or last.op_type not in ("Gemm", "MatMul", "Conv"):
        return None
    scales = []
    for name in last.input[:2]:
        dq = producer.get(name)
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[1] not in values:
            return None
        scales.append(values[dq.input[1]].astype(np.float64).reshape(-1))
    step = scales[0] * scales[1]
    alpha = next((a.f for a in last.attribute if a.name == "alpha"), 1.0)
    return step * abs(alpha)
