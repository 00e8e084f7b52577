"""The store's three objects (issue 19, 3): the regression gates only judge, this run's history only keeps
records, the session ties them; each takes the typed config (hilci.pipeline.config.Config), never a dict that
was flattened from it and typed again."""

from __future__ import annotations

from pathlib import Path

from hilci.pipeline.config import Config
from hilci.pipeline.sections import GateSettings
from hilci.store import history
from hilci.store.backend import Store
from hilci.store.cache import entry_path
from hilci.store.gates import RegressionGates
from hilci.store.runhistory import RunHistory
from hilci.store.trust import Trust
from hilci.util import settings as typed
from tests.fixture_pipelines import PIPELINE, make_project
from tests.test_runner import GOOD

GATES = {"window": 4, "min_runs": 3, "measurements": {"check.score": {"direction": "higher"}}}


def _record(i: int, score: float, key: str = "") -> dict:
    return history.make_record(origin={"commit": f"{i:040x}", "branch": "main", "build": f"#{i}"}, board="sim",
                               rig="", stage="check", start=1_000.0 + i, duration_s=1.0, status="passed",
                               key=key, environment={}, measurements={"check.score": {"value": score, "unit": "pt"}})


def _team_store(folder: Path) -> Store:
    store = Store(folder.as_uri())
    for i in range(6):
        history.append(store, _record(i, 1.0 + 0.001 * i), folder)
    return store


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_gates_judge_a_regression_and_write_nothing(tmp_path: Path):
    folder = tmp_path / "team"
    store = _team_store(folder)
    settings = typed.build(GateSettings, GATES, file="hilci.yaml")
    before = _files(folder)
    (judgement,) = RegressionGates(store, Trust("main", ("main",)), settings, "main").judge(_record(9, 0.5))
    assert judgement.regressed and judgement.runs == 4  # the typed window, read as it was set
    assert _files(folder) == before  # no record rewritten, no entry dropped: that is the session's


def test_a_regressed_record_is_rewritten_and_its_entry_dropped_by_the_session(tmp_path: Path, monkeypatch):
    from hilci.store.session import StoreSession

    monkeypatch.setenv("HILCI_BRANCH", "main")
    folder = tmp_path / "team"
    _team_store(folder)
    root = make_project(tmp_path / "p", GOOD)
    key = "ab" * 32
    entry = folder / entry_path("check", key)
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text("{}")
    config = Config(root / "hilci.yaml", regressions=typed.build(GateSettings, GATES, file="hilci.yaml"))
    session = StoreSession.open(root, PIPELINE, config, url=folder.as_uri())
    session.records = [_record(9, 0.5, key=key)]
    (judgement,) = session.judge()
    notes = session.close()
    assert judgement.regressed and not entry.exists()
    assert any("cache entry abababababab dropped" in n for n in notes), notes
    written = [r for r in history.load(Store(folder.as_uri()), "main").records if r["commit"] == f"{9:040x}"]
    assert [(r["status"], r["regressed"]) for r in written] == [("regressed", ["check.score"])]


def test_run_history_spools_while_the_store_is_away_and_says_where(tmp_path: Path):
    runs = RunHistory(tmp_path, None, Trust("main", ("main",)), {"commit": "c" * 40, "branch": "main",
                                                                 "build": "#1", "target": "main"})
    runs.mark_regressed(_record(1, 0.5), ["check.score"])
    assert runs.spooled == 1 and str(tmp_path / ".hilci-cache") in runs.spool_note()
    assert list((tmp_path / ".hilci-cache" / history.SPOOL).rglob("*.json"))


def test_trusted_branches_reach_the_store_typed(tmp_path: Path):
    from hilci.pipeline import config as hilci_yaml
    from hilci.store.trust import trust_for

    root = make_project(tmp_path / "p", GOOD)
    (root / "hilci.yaml").write_text((root / "hilci.yaml").read_text() + "trusted_branches: [main, 'rel/*']\n")
    loaded = hilci_yaml.load(root, PIPELINE)
    assert trust_for("rel/2", loaded).trusted and not trust_for("release/2", loaded).trusted
    assert trust_for("release/2", None).trusted  # no file: the defaults
