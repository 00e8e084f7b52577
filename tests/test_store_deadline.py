"""A store that accepts connections and never answers costs a run one deadline, not one per call (issue 16, 4).

Today every call waits three deadlines, each later call waits again, and a timed-out call's worker thread keeps
the process alive until the store comes back.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixture_pipelines import make_project
from tests.frozen_store import FreezingS3, SilentServer
from tests.test_runner import GOOD
from tests.test_store_cache import hilci

DEADLINE_S = 1.5


@pytest.fixture
def frozen():
    server = SilentServer(DEADLINE_S)
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


@pytest.mark.pipeline
@pytest.mark.pipeline
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


@pytest.mark.pipeline
def test_a_store_that_freezes_after_the_run_found_it_up_costs_one_deadline_said_once(tmp_path: Path):
    """The store answers the probe, then goes silent: today every later call waits its own three deadlines
    (109 s for this three-stage run with a 3 s deadline); now the first wait takes the store down."""
    server = FreezingS3(DEADLINE_S)
    try:
        project = make_project(tmp_path / "p", GOOD)
        proc = hilci(project, "run", env=server.env(), timeout=120)
    finally:
        server.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert server.answered == 2  # the probe's listing and write: the store was up when the run began
    notes = [line for line in proc.stdout.splitlines() if line.startswith("note:")]
    assert notes[0].startswith("note: store unavailable during the run: store s3://hilci/frozen did not answer")
    assert f"({DEADLINE_S:g} s lost waiting)" in notes[0]
    assert sum(f"within {DEADLINE_S:g} s" in n for n in notes) == 1, notes
