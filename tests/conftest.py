"""The test suite's own environment: no store and no store credentials inherited from whoever runs it.

The build stage runs these tests inside a pipeline whose environment names the team's store ($HILCI_STORE) and
holds its keys (AWS_*); a test that starts a store or names one passes it explicitly, never through these.
"""

from __future__ import annotations

import os

INHERITED = ("HILCI_STORE", "HILCI_STORE_TIMEOUT_S")


def pytest_configure(config) -> None:
    for name in list(os.environ):
        if name in INHERITED or name.startswith("AWS_"):
            del os.environ[name]
