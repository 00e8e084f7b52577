"""HIL suites: the hilci plugin (entry point) supplies --rig, device fixtures, `gate` and each test's time limit
(--hil-timeout); this loads the rig's model engine (the model path lives in `hilci.conversion`, which the
framework never imports)."""

import pytest


@pytest.fixture
def hil_engine(hil_rig):
    """`hil_engine()`: the rig's model engine through the model path's runner (ONNX Runtime or TensorRT by
    suffix), loaded inside the test so that a missing engine fails the test rather than erroring its setup."""

    def load():
        path = hil_rig.engine_path()
        from hilci.conversion.engines import load_engine

        try:
            return load_engine(path)
        except Exception as exc:  # the runner's own errors name the file; keep them one line
            pytest.fail(f"{hil_rig.rig.path}: engine: {exc}", pytrace=False)

    return load
