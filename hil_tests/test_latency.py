"""Latency: the rig's engine within its inference budget, and the loop camera frame -> inference -> servo command
-> servo feedback within its budget (ONNX Runtime in emulation, TensorRT on a Jetson)."""

import time

import numpy as np
import pytest

from hilci.hil.drivers.base import DeviceError
from hilci.hil.frames import FrameSource, to_input
from hilci.results.measurements import distribution

pytestmark = pytest.mark.latency


def _budget(hil_rig, name):
    value = getattr(hil_rig.rig.budgets, name)
    if value is None:
        pytest.fail(f"{hil_rig.rig.path}: budgets.{name}: required for the latency suite", pytrace=False)
    return value


@pytest.mark.measures(("engine.inference", "ms"))
def test_inference_latency(hil_rig, hil_engine, gate):
    engine = hil_engine()
    budget = _budget(hil_rig, "inference_p99_ms")
    settings = hil_rig.rig.settings
    source = FrameSource(32, 32)
    inputs = [to_input(source.next()[0], engine.input_shape) for _ in range(16)]
    for i in range(settings.latency_warmup):
        engine.run(inputs[i % len(inputs)])
    samples = []
    for i in range(settings.latency_samples):
        t0 = time.perf_counter_ns()
        engine.run(inputs[i % len(inputs)])
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    gate(distribution("engine.inference", samples, "ms", gate="p99", high=budget,
                      nominal=f"{engine.backend}, {settings.latency_samples} runs after "
                              f"{settings.latency_warmup} warm-up"))


@pytest.mark.measures(("loop", "ms"))
def test_loop_latency(hil_rig, hil_engine, gate):
    """Frame received -> preprocess -> engine -> goal position written -> present position read back."""
    engine = hil_engine()
    budget = _budget(hil_rig, "loop_p99_ms")
    settings = hil_rig.rig.settings
    cam_dev, servo_dev = hil_rig.device("camera"), hil_rig.device("servo")
    dxl_id = servo_dev.settings.ids[0]
    warmup, n = 3, settings.loop_samples
    samples = []
    with hil_rig.open(cam_dev) as camera, hil_rig.open(servo_dev) as servo:
        try:
            servo.torque(dxl_id, True)
            while len(samples) < warmup + n:
                cap = camera.capture(1.0, max_frames=1)
                if cap.error or not cap.frames:
                    pytest.fail(cap.error or f"{camera.label}: no frame within 1 s", pytrace=False)
                frame = cap.frames[-1]
                scores = engine.run(to_input(frame.image, engine.input_shape))
                digit = int(np.argmax(scores))
                servo.goal(dxl_id, 512 + 300 * digit)
                servo.position(dxl_id)
                samples.append((time.perf_counter_ns() - frame.arrival_ns) / 1e6)
        except DeviceError as exc:
            message = servo.explain(exc, dxl_id) if "servo" in str(exc) else str(exc)
            raise pytest.fail.Exception(message, pytrace=False) from None
    gate(distribution("loop", samples[warmup:], "ms", gate="p99", high=budget,
                      nominal="camera frame -> inference -> servo command -> feedback"))
