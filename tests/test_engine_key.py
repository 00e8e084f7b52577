"""An engine's store key sees what it is only valid for (#16 item 3): TensorRT's version, the GPU's compute
capability, CUDA, the L4T release and the builder flags, so a board never reuses another platform's engine."""

from __future__ import annotations

import types

import pytest

from hilci.conversion import stages
from hilci.conversion.engines import tensorrt
from hilci.store import place
from hilci.store.engines import engine_key, timing_key


def identity(monkeypatch, *, trt="10.3.0", cc="8.7", cuda="12.6", l4t="36.4.0", options=None):
    monkeypatch.setattr(tensorrt, "import_tensorrt", lambda: types.SimpleNamespace(__version__=trt))
    monkeypatch.setattr(tensorrt, "device_properties", lambda: ({"name": "Orin", "compute_capability": cc}, cuda))
    monkeypatch.setattr(place, "local_accelerator", lambda: {"kind": "nvidia", "l4t": l4t})
    version, device, facts, flags = stages.engine_identity("tensorrt", "agx-orin", options or {})
    return (engine_key(backend="tensorrt", runtime_version=version, device=device, onnx_sha256="0" * 64,
                       settings={"options": flags}, platform=facts),
            timing_key(backend="tensorrt", runtime_version=version, device=device, platform=facts))


@pytest.mark.parametrize("change", [{"trt": "10.7.0"}, {"cc": "8.6"}, {"cuda": "12.8"}, {"l4t": "36.3.0"},
                                    {"options": {"fp16": False}}, {"options": {"builder_optimization_level": 5}}])
def test_each_platform_fact_and_builder_flag_changes_the_engine_key(monkeypatch, change):
    base_key, base_timing = identity(monkeypatch)
    key, timing = identity(monkeypatch, **change)
    assert key != base_key
    if "options" not in change:  # a timing cache is per runtime and GPU, whatever the flags
        assert timing != base_timing


def test_a_default_flag_spelled_out_is_the_same_engine(monkeypatch):
    assert identity(monkeypatch)[0] == identity(monkeypatch, options={"fp16": True, "timing_cache": "/tmp/t"})[0]
