"""History with an index (issue 16, 6): a run reads its branch's last N runs on a board in O(N) reads.

Record names are time-sorted and carry commit and stage, so one listing says which few records to read; today
the gates, the trends, `hilci history` and gc read every record of the branch (one GET each).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hilci.store import history
from hilci.store.backend import Store
from tests.fixture_pipelines import PIPELINE, make_project
from tests.test_runner import GOOD

RECORDS = 300


class CountingStore(Store):
    """A folder store that counts the objects it reads."""

    reads = 0

    def read_bytes(self, rel: str) -> bytes | None:
        CountingStore.reads += 1
        return super().read_bytes(rel)


def _record(i: int, board: str, stage: str = "check", status: str = "passed") -> dict:
    return history.make_record(origin={"commit": f"{i:040x}", "branch": "main", "build": f"#{i}"}, board=board,
                               rig="", stage=stage, start=1_000_000.0 + i, duration_s=1.0, status=status,
                               key=f"{i:064x}", environment={},
                               measurements={"check.score": {"value": 1.0 + (i % 3) * 0.01, "unit": "pt"}})


@pytest.fixture(scope="module")
def long_history(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("history") / "team"
    store = Store(folder.as_uri())
    for i in range(RECORDS):
        for board in ("sim", "orin-nx"):
            history.append(store, _record(i, board), folder)
    return folder


def test_the_gate_and_the_trends_read_about_their_window_not_the_whole_history(long_history: Path,
                                                                             tmp_path: Path, monkeypatch):
    from hilci.pipeline.config import Config
    from hilci.pipeline.sections import GateSettings
    from hilci.store.session import StoreSession
    from hilci.util import settings as typed

    monkeypatch.setenv("HILCI_BRANCH", "main")
    root = make_project(tmp_path / "p", GOOD)
    gates = {"window": 10, "measurements": {"check.score": {"direction": "higher"}}}
    config = Config(root / "hilci.yaml", regressions=typed.build(GateSettings, gates, file="hilci.yaml"))
    session = StoreSession.open(root, PIPELINE, config, url=long_history.as_uri())
    session.store.__class__ = CountingStore
    session.records = [_record(RECORDS, "sim")]
    CountingStore.reads = 0
    (judgement,) = session.judge()
    assert judgement.runs == 10 and CountingStore.reads <= 12, CountingStore.reads
    CountingStore.reads = 0
    trend = session.trends(runs=20)
    assert len(trend[0]["points"]) == 20 and CountingStore.reads <= 22, CountingStore.reads
    session.close()


def test_gc_and_history_read_a_few_records_per_board(long_history: Path):
    from hilci.store.gc import protected_keys

    store = CountingStore(long_history.as_uri())
    CountingStore.reads = 0
    keys = protected_keys(store, ("main",))
    assert keys == {f"{RECORDS - 1:064x}"} and CountingStore.reads <= 4, CountingStore.reads
    CountingStore.reads = 0
    last = history.recent(store, "main", "sim", last=5)
    assert [r["commit"] for r in last.records] == [f"{i:040x}" for i in range(RECORDS - 5, RECORDS)]
    assert CountingStore.reads == 5


def test_a_regressed_record_and_a_cached_one_are_passed_over_for_older_green_runs(tmp_path: Path):
    store = Store((tmp_path / "s").as_uri())
    for i in range(8):
        status = "regressed" if i in (6, 7) else "passed"
        history.append(store, _record(i, "sim", status=status), tmp_path)
    base = history.recent(store, "main", "sim", stage="check", last=3, keep=lambda r: r["status"] == "passed")
    assert [r["build"] for r in base.records] == ["#3", "#4", "#5"]


def test_a_long_history_is_found_by_listing_its_newest_days_only(tmp_path: Path):
    """A folder per UTC day: the last runs cost a listing of the board and of the newest days, not of every
    record (a record of the layout before day folders is still read, as the oldest)."""
    folder = tmp_path / "s"
    store = Store(folder.as_uri())
    for i in range(60):
        record = _record(i, "sim")
        record["start"] = 1_000_000.0 + i * 43_200  # two runs a day for a month
        history.append(store, record, tmp_path)
    old = _record(-1, "sim")
    (folder / "history" / "main" / "sim" / "19700101T000000.000000Z-old000000000-check.json").write_text(
        __import__("json").dumps(old))
    listed: list[str] = []
    names = store.names
    store.names = lambda prefix: listed.append(prefix) or names(prefix)
    last = history.recent(store, "main", "sim", stage="check", last=3)
    assert [r["build"] for r in last.records] == ["#57", "#58", "#59"] and len(listed) == 3, listed
    every = history.recent(store, "main", "sim", stage="check", last=100)
    assert len(every.records) == 61 and every.records[0]["build"] == "#-1"
