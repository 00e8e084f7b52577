"""The TensorRT-compatibility lint: each rule, broken by a model built here, names the node and the rule."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hilci.conversion import lint


def qdq_model(*, opset: int = 17, act_zero: int = 0, zero_dtype=np.int8, omit_zero: bool = False,
              weight_scale: str = "channel", weight_axis: int = 0, act_scale_shape: tuple = (),
              negative_scale: bool = False, q_feeds_relu: bool = False, dq_scale_differs: bool = False,
              size: int = 4, seed: int = 0) -> onnx.ModelProto:
    """A small Q/DQ CNN shaped like modelopt's export (Q->DQ on input, conv weight, fc input and fc weight)."""
    rng = np.random.RandomState(seed)
    inits, nodes = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def qdq(prefix, src, scale, axis=None, dq_scale=None):
        s = const(f"{prefix}.scale", scale)
        z = None if omit_zero else const(f"{prefix}.zero", np.full(np.shape(scale), act_zero, dtype=zero_dtype))
        ins = [src, s] + ([z] if z else [])
        attrs = {"axis": axis} if axis is not None else {}
        nodes.append(helper.make_node("QuantizeLinear", ins, [f"{prefix}.q"], name=f"{prefix}/Q", **attrs))
        dq_ins = list(ins)
        if dq_scale is not None:
            dq_ins[1] = const(f"{prefix}.dq_scale", dq_scale)
        dq_ins[0] = f"{prefix}.q"
        nodes.append(helper.make_node("DequantizeLinear", dq_ins, [f"{prefix}.dq"], name=f"{prefix}/DQ", **attrs))
        return f"{prefix}.dq"

    sign = -1.0 if negative_scale else 1.0
    act_scale = np.full(act_scale_shape, sign / 127, dtype=np.float32)
    x = qdq("input", "input", act_scale, dq_scale=(act_scale * 2 if dq_scale_differs else None))
    w1 = const("conv.weight", rng.randn(2, 1, 3, 3).astype(np.float32))
    if weight_scale == "channel":
        w1_scale = (np.abs(rng.randn(2 if weight_axis == 0 else 1)) / 127 + 1e-3).astype(np.float32)
    else:
        w1_scale = np.float32(0.01)
    w1q = qdq("conv.wq", w1, w1_scale, axis=weight_axis)
    b1 = const("conv.bias", np.zeros(2, np.float32))
    nodes.append(helper.make_node("Conv", [x, w1q, b1], ["conv.out"], name="conv/Conv", pads=[1, 1, 1, 1]))
    relu_in = "conv.out"
    if q_feeds_relu:
        s = const("bad.scale", np.float32(0.02))
        z = const("bad.zero", np.int8(0))
        nodes.append(helper.make_node("QuantizeLinear", ["conv.out", s, z], ["bad.q"], name="bad/Q"))
        nodes.append(helper.make_node("Cast", ["bad.q"], ["bad.f"], name="bad/Cast", to=TensorProto.FLOAT))
        relu_in = "bad.f"
    nodes.append(helper.make_node("Relu", [relu_in], ["relu.out"], name="relu"))
    nodes.append(helper.make_node("Flatten", ["relu.out"], ["flat"], name="flatten", axis=1))
    fx = qdq("fc.in", "flat", np.float32(0.05))
    w2 = const("fc.weight", rng.randn(3, 2 * size * size).astype(np.float32))
    w2q = qdq("fc.wq", w2, (np.abs(rng.randn(3)) / 127 + 1e-3).astype(np.float32), axis=0)
    b2 = const("fc.bias", np.zeros(3, np.float32))
    nodes.append(helper.make_node("Gemm", [fx, w2q, b2], ["logits"], name="fc/Gemm", transB=1))
    graph = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def rules(model) -> dict[str, set[str]]:
    """{rule: {node names}} of the lint's violations."""
    found: dict[str, set[str]] = {}
    for v in lint.lint_model(model).violations:
        found.setdefault(v.rule, set()).add(v.node)
    return found


def test_a_symmetric_int8_model_passes_and_counts_its_nodes(tmp_path):
    path = tmp_path / "ok.onnx"
    onnx.save(qdq_model(), path)
    report = lint.lint_file(path)
    assert report.ok, report.summary()
    assert (report.quantize_nodes, report.dequantize_nodes, report.opset) == (4, 4, 17)


def test_opset_below_13_is_named():
    assert rules(qdq_model(opset=12)) == {"opset": {"(model)"}}


def test_nonzero_zero_point_is_asymmetric():
    found = rules(qdq_model(act_zero=3))
    assert "zero-point" in found and "input/Q" in found["zero-point"] and "fc.wq/DQ" in found["zero-point"]


def test_uint8_zero_point_breaks_int8_rule():
    found = rules(qdq_model(zero_dtype=np.uint8))
    assert "input/Q" in found["int8"] and set(found) == {"int8"}


def test_missing_zero_point_breaks_int8_rule():
    assert "conv.wq/DQ" in rules(qdq_model(omit_zero=True))["int8"]


def test_negative_scale_is_named():
    found = rules(qdq_model(negative_scale=True))
    assert found == {"scale-positive": {"input/Q", "input/DQ"}}


def test_per_tensor_weight_scale_is_not_per_channel():
    assert rules(qdq_model(weight_scale="tensor")) == {"weight-scale": {"conv.wq/Q", "conv.wq/DQ"}}


def test_weight_scale_on_axis_1_is_named():
    assert rules(qdq_model(weight_axis=1)) == {"weight-scale": {"conv.wq/Q", "conv.wq/DQ"}}


def test_per_channel_activation_scale_is_named():
    found = rules(qdq_model(act_scale_shape=(4,)))
    assert found == {"activation-scale": {"input/Q", "input/DQ"}}


def test_quantize_not_followed_by_dequantize_is_named():
    assert rules(qdq_model(q_feeds_relu=True)) == {"pair": {"bad/Q"}}


def test_dequantize_with_other_scale_than_its_quantize_is_named():
    assert rules(qdq_model(dq_scale_differs=True)) == {"pair": {"input/DQ"}}


def test_violation_text_names_node_and_rule():
    text = lint.lint_model(qdq_model(act_zero=5)).summary()
    assert "node input/Q: zero-point:" in text and "asymmetric" in text


@pytest.mark.parametrize("content", [b"", b"\x08\x07garbage-not-a-model" * 3])
def test_corrupt_file_is_a_lint_error_naming_it(tmp_path, content):
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(lint.LintError, match="broken.onnx"):
        lint.lint_file(path)


def test_truncated_model_is_a_lint_error(tmp_path):
    good = tmp_path / "good.onnx"
    onnx.save(qdq_model(), good)
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(lint.LintError, match="cut.onnx"):
        lint.lint_file(cut)


def test_missing_file_is_a_lint_error(tmp_path):
    with pytest.raises(lint.LintError, match="no such ONNX file"):
        lint.lint_file(tmp_path / "absent.onnx")
