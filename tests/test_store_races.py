"""Two faults of #16 "Bad input and faults": two protected builds of one commit saving one key at once, and a
history record written by a newer hilci; each ends in one clear outcome, never a torn entry or a traceback."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from hilci.stage.run import load_config
from hilci.store import history
from hilci.store.backend import Store
from hilci.store.cache import StageCache
from hilci.store.session import StoreSession
from tests.fixture_pipelines import GOOD, PIPELINE, make_project
from tests.test_store_cache import junit_text


def _workspace(root: Path, build: str) -> Path:
    """One build's checkout of the same commit, whose (nondeterministic) outputs differ from the other's."""
    make_project(root, GOOD)
    (root / "out/gen").mkdir(parents=True)
    for n in range(8):
        (root / f"out/gen/{n}.txt").write_text(f"{build} file {n}\n" * 200)
    (root / "j.xml").write_text(junit_text().replace('name="s"', f'name="s-{build}"'))
    (root / "log.txt").write_text(f"log of {build}\n")
    return root


def test_two_protected_builds_of_one_commit_saving_one_key_leave_one_whole_entry(tmp_path: Path):
    url = (tmp_path / "store").as_uri()
    stage = PIPELINE.stage("gen")
    builds = {b: _workspace(tmp_path / b, b) for b in ("#41", "#42")}
    for attempt in range(5):
        key = f"{attempt}" * 64
        gate = threading.Barrier(2)
        saved: dict[str, bool] = {}

        def save(build: str, root: Path, key=key, gate=gate, saved=saved) -> None:
            cache = StageCache(root, Store(url))
            gate.wait(timeout=30)
            saved[build] = cache.save(stage, key, {"format": 3}, root / "j.xml", root / "log.txt",
                                      {"commit": "c0ffee", "build": build, "branch": "main"})

        threads = [threading.Thread(target=save, args=item) for item in builds.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert saved == {"#41": True, "#42": True}  # neither build fails for the other's save
        hit = StageCache(tmp_path / "#41", Store(url)).lookup(stage, key)
        assert hit is not None
        winner = hit.record["build"]
        # whole: every file, the JUnit and the log are the winning build's, none the other's
        assert hit.files == {f"out/gen/{n}.txt": f"{winner} file {n}\n".encode() * 200 for n in range(8)}
        assert f's-{winner}"'.encode() in hit.junit
        assert not list((tmp_path / "store").rglob(".tmp-*"))


def test_a_history_record_of_a_newer_format_is_named_once_by_the_gates_and_never_misread(tmp_path: Path):
    root = make_project(tmp_path / "p", GOOD)
    store = Store((tmp_path / "store").as_uri())
    now = time.time()
    for n in range(6):  # main's green runs: the baseline
        record = history.make_record(origin={"commit": f"{n:012d}", "branch": "main", "build": f"#{n}"},
                                     board="local", rig="", stage="gen", start=now - 3600 + n, duration_s=1.0,
                                     status="passed", key="k", environment={},
                                     measurements={"gen.score": {"value": 1.0, "unit": "pt"}})
        store.write_bytes(history.record_path(record), json.dumps(record).encode())
    future = dict(record, format=history.RECORD_FORMAT + 1, start=now - 10, commit="f" * 12,
                  measurements=[["gen.score", "a shape this hilci does not know"]])
    rel = history.record_path(future)
    store.write_bytes(rel, json.dumps(future).encode())
    found = history.recent(store, "main", "local", stage="gen", last=20)
    assert len(found.records) == 6 and all(r["format"] == history.RECORD_FORMAT for r in found.records)
    assert found.skipped == [f"{rel}: record format {history.RECORD_FORMAT + 1} is newer than this hilci reads "
                             f"({history.RECORD_FORMAT}); skipped"]
    # the run's gates read the same baseline: the newer record is one note, not an exception, not a baseline run
    session = StoreSession.open(root, PIPELINE, load_config(root, PIPELINE), url=(tmp_path / "store").as_uri())
    session.origin["target"] = "main"
    session.records.append(history.make_record(
        origin={"commit": "1" * 12, "branch": "main", "build": "#9"}, board="local", rig="", stage="gen",
        start=now, duration_s=1.0, status="passed", key="k2", environment={},
        measurements={"gen.score": {"value": 1.0, "unit": "pt"}}))
    judged = session.judge()
    session.close()
    assert judged and not any(j.regressed for j in judged)
    assert [n for n in session.notes if "newer" in n] == [
        f"history: {rel}: record format {history.RECORD_FORMAT + 1} is newer than this hilci reads "
        f"({history.RECORD_FORMAT}); skipped"]
