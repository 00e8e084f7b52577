"""A store that accepts connections and never answers costs a run one deadline, not one per call (issue 16, 4).

Today every call waits three deadlines, each later call waits again, and a timed-out call's worker thread keeps
the process alive until the store comes back.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.fixture_pipelines import make_project
from tests.test_runner import GOOD
from tests.test_store_cache import hilci

DEADLINE_S = 1.5


class SilentServer:
    """A TCP server that accepts every connection and never sends a byte (a frozen store)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}", "AWS_ACCESS_KEY_ID": "frozen",
                "AWS_SECRET_ACCESS_KEY": "frozen-secret", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true", "HILCI_STORE": "s3://hilci/frozen",
                "HILCI_STORE_TIMEOUT_S": str(DEADLINE_S)}

    def close(self) -> None:
        self._stop.set()
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def frozen():
    server = SilentServer()
    yield server
    server.close()


def test_after_the_first_deadline_the_store_is_down_and_no_call_waits_again(frozen: SilentServer, monkeypatch):
    from hilci.store.backend import Store, StoreUnavailable

    for name, value in frozen.env().items():
        monkeypatch.setenv(name, value)
    store = Store("s3://hilci/frozen", timeout_s=DEADLINE_S)
    with pytest.raises(StoreUnavailable, match=r"within 1.5 s.*1.5 s lost"):
        store.read_bytes("history/main/x.json")
    seen = len(frozen.accepted)
    assert seen >= 1
    for rel in ("entries/a/b.json", "blobs/00/00", "history/main"):
        with pytest.raises(StoreUnavailable, match="taken as down"):
            store.read_bytes(rel)
    assert len(frozen.accepted) == seen  # the breaker is open: nothing more was asked of the store
    store.close()


def test_a_process_with_a_call_still_waiting_on_a_frozen_store_exits(frozen: SilentServer):
    """Today the worker thread of the timed-out call is joined at exit: the process lives until the store
    answers (here: never; the subprocess timeout would fire)."""
    code = ("import threading\n"
            "from hilci.store.backend import Store, StoreUnavailable\n"
            f"s = Store('s3://hilci/frozen', timeout_s={DEADLINE_S})\n"
            "try:\n    s.read_bytes('x')\nexcept StoreUnavailable as e:\n    print('down:', e)\n"
            "s.close()\n"
            "print('holding:', [t.name for t in threading.enumerate() if not t.daemon and "
            "t is not threading.main_thread()])\n")
    proc = subprocess.run([sys.executable, "-c", code], env={**hilci_env(), **frozen.env()}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "down:" in proc.stdout, proc.stdout + proc.stderr
    assert "holding: []" in proc.stdout, proc.stdout


def test_a_run_against_a_frozen_store_finishes_with_one_note_saying_what_it_cost(tmp_path: Path,
                                                                                  frozen: SilentServer):
    project = make_project(tmp_path / "p", GOOD)
    proc = hilci(project, "run", env=frozen.env(), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert out.count(f"within {DEADLINE_S:g} s") == 1, out
    assert f"({DEADLINE_S:g} s lost waiting)" in out


def hilci_env() -> dict[str, str]:
    from tests.scratch import REPO, child_env

    return child_env(PYTHONPATH=str(REPO))
