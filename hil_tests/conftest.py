"""HIL suites: the hilci plugin (entry point) supplies --rig, device fixtures and `gate`; this sets timeouts and
loads the rig's model engine (the model path lives in `conversion`, which the framework never imports)."""

import pytest

DEFAULT_TIMEOUT_S = 30  # every HIL test ends, whatever a device does


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("timeout") is None:
            # signal method: the test gets an exception, so teardown (the actuators' safe state) still runs
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT_S, method="signal"))


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
