"""HIL suites: the hilci plugin (entry point) supplies --rig, device fixtures and `gate`; this sets timeouts."""

import pytest

DEFAULT_TIMEOUT_S = 30  # every HIL test ends, whatever a device does


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("timeout") is None:
            # signal method: the test gets an exception, so teardown (the actuators' safe state) still runs
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT_S, method="signal"))
