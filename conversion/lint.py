"""A TensorRT-compatibility lint of Q/DQ ONNX models: the rules explicit quantization in TensorRT needs.

Rules (each violation names the node and the rule):
  opset             default-domain opset >= 13 (per-channel QuantizeLinear/DequantizeLinear)
  int8              zero points are present and int8 (uint8 or a missing zero point means asymmetric uint8)
  zero-point        every zero point is 0 (symmetric quantization)
  scale-positive    every scale is finite and > 0
  weight-scale      a weight's scale is 1-D, per output channel, on axis 0
  activation-scale  an activation's scale is a scalar (per-tensor)
  pair              every QuantizeLinear feeds DequantizeLinear nodes with the same scale and zero point
No torch here: a Jetson can lint a model before building its engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hilci.util.extras import require

MIN_OPSET = 13
RULES = ("opset", "int8", "zero-point", "scale-positive", "weight-scale", "activation-scale", "pair")
QDQ = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class Violation:
    """One broken rule at one node."""

    node: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"node {self.node}: {self.rule}: {self.detail}"


@dataclass
class LintReport:
    """What the lint saw and what it found."""

    opset: int
    quantize_nodes: int
    dequantize_nodes: int
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        head = f"{self.quantize_nodes} Q + {self.dequantize_nodes} DQ nodes, opset {self.opset}"
        return head if self.ok else head + "; " + "; ".join(map(str, self.violations))


class LintError(ValueError):
    """The file is not a readable ONNX model; the message names it."""


def constants(graph) -> dict[str, np.ndarray]:
    """Values of initializers and Constant nodes by tensor name."""
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _axis(node) -> int:
    for attr in node.attribute:
        if attr.name == "axis":
            return int(attr.i)
    return 1  # the ONNX default


def _opset(model) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


class _Graph:
    """What the rules look up in a graph: its constants, which node produces a tensor, which nodes consume it."""

    def __init__(self, graph):
        self.values = constants(graph)
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def input(self, node, index: int) -> np.ndarray | None:
        """The constant at input `index` of a node (None when absent, empty or not a constant)."""
        return self.values.get(node.input[index]) if len(node.input) > index and node.input[index] else None

    def weight_of(self, node) -> np.ndarray | None:
        """The constant weight a Q/DQ node quantizes (directly, or through its QuantizeLinear)."""
        src = node.input[0]
        if src in self.values:
            return self.values[src]
        up = self.producer.get(src)
        if node.op_type == "DequantizeLinear" and up is not None and up.op_type == "QuantizeLinear":
            return self.values.get(up.input[0])
        return None


def lint_model(model) -> LintReport:
    """Check every Q/DQ node of an onnx.ModelProto against the rules above."""
    graph = _Graph(model.graph)
    qdq = [n for n in model.graph.node if n.op_type in QDQ]
    report = LintReport(_opset(model), sum(n.op_type == "QuantizeLinear" for n in qdq),
                        sum(n.op_type == "DequantizeLinear" for n in qdq))
    if report.opset < MIN_OPSET:
        report.violations.append(Violation("(model)", "opset", f"opset {report.opset} < {MIN_OPSET}"))
    for node in qdq:
        report.violations.extend(_node_violations(graph, node))
    return report


def _node_violations(graph: _Graph, node) -> list[Violation]:
    name = node.name or node.output[0]
    scale, zero = graph.input(node, 1), graph.input(node, 2)
    if scale is None:
        return [Violation(name, "scale-positive", "scale is not a constant")]
    found = _scale_violations(name, scale) + _zero_point_violations(name, scale, zero)
    weight = graph.weight_of(node)
    found += _weight_scale_violations(name, node, scale, weight) if weight is not None else \
        _activation_scale_violations(name, scale)
    if node.op_type == "QuantizeLinear":
        found += _pair_violations(graph, node, name, scale, zero)
    return found


def _scale_violations(name: str, scale: np.ndarray) -> list[Violation]:
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        return [Violation(name, "scale-positive", f"scale has non-positive or non-finite values (min {scale.min()})")]
    return []


def _zero_point_violations(name: str, scale: np.ndarray, zero: np.ndarray | None) -> list[Violation]:
    """TensorRT's explicit quantization: an int8 zero point of 0, shaped like its scale."""
    if zero is None:
        return [Violation(name, "int8", "no zero point: defaults to uint8, TensorRT needs int8")]
    found = []
    if zero.dtype != np.int8:
        found.append(Violation(name, "int8", f"zero point is {zero.dtype}, TensorRT needs int8"))
    if np.any(zero != 0):
        found.append(Violation(name, "zero-point", f"zero point {np.unique(zero)[:4].tolist()} is not 0 (asymmetric)"))
    if zero.shape != scale.shape:
        found.append(Violation(name, "zero-point", f"zero point shape {zero.shape} differs from scale {scale.shape}"))
    return found


def _weight_scale_violations(name: str, node, scale: np.ndarray, weight: np.ndarray) -> list[Violation]:
    """A weight is quantized per output channel: a 1-D scale on axis 0, one per channel."""
    axis = _axis(node)
    if scale.ndim != 1:
        return [Violation(name, "weight-scale", f"weight scale has shape {scale.shape}, needs 1-D per channel")]
    if axis != 0:
        return [Violation(name, "weight-scale", f"per-channel axis is {axis}, needs 0 (output channels)")]
    if scale.shape[0] != weight.shape[0]:
        return [Violation(name, "weight-scale", f"{scale.shape[0]} scales for {weight.shape[0]} output channels")]
    return []


def _activation_scale_violations(name: str, scale: np.ndarray) -> list[Violation]:
    """An activation is quantized per tensor: one scalar scale."""
    if scale.size != 1 or scale.ndim > 1:
        return [Violation(name, "activation-scale", f"activation scale has shape {scale.shape}, needs a scalar")]
    return []


def _pair_violations(graph: _Graph, node, name: str, scale: np.ndarray, zero: np.ndarray | None) -> list[Violation]:
    """A QuantizeLinear feeds only DequantizeLinear nodes, each with the same scale and zero point."""
    users = graph.consumers.get(node.output[0], [])
    found = []
    if not users or any(u.op_type != "DequantizeLinear" for u in users):
        kinds = sorted({u.op_type for u in users}) or ["nothing"]
        found.append(Violation(name, "pair", f"QuantizeLinear feeds {', '.join(kinds)}, not DequantizeLinear"))
    for user in users:
        if user.op_type != "DequantizeLinear":
            continue
        u_scale = graph.values.get(user.input[1])
        u_zero = graph.input(user, 2)
        if u_scale is None or u_scale.shape != scale.shape or not np.array_equal(u_scale, scale) or (
                (u_zero is None) != (zero is None) or (zero is not None and not np.array_equal(u_zero, zero))):
            found.append(Violation(user.name or user.output[0], "pair",
                                   f"scale/zero point differ from its QuantizeLinear {name}"))
    return found


def load(path: Path):
    """An ONNX model from disk; LintError naming the file if it is truncated or not ONNX."""
    onnx = require("onnx")

    path = Path(path)
    if not path.is_file():
        raise LintError(f"{path}: no such ONNX file")
    try:
        return onnx.load(str(path))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LintError(f"{path}: not a readable ONNX model ({first})") from None


def check(path: Path):
    """`onnx.checker` full check (types and shapes inferred); LintError naming the file on failure."""
    onnx = require("onnx")

    model = load(path)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LintError(f"{path}: fails onnx.checker ({first})") from None
    return model


def lint_file(path: Path) -> LintReport:
    return lint_model(check(path))
