"""The stage cache on the store, through `hilci run` in real subprocesses, on the file backend and on a real
S3 server (SeaweedFS): hits, restores, corrupt entries (8.6), "cached from", an unavailable or refusing store."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hilci.results import junit
from hilci.util.digest import sha256_bytes
from tests import seaweed
from tests.conftest import REPO, hilci
from tests.fixture_pipelines import make_project
from tests.scratch import child_env
from tests.test_runner import GOOD, runs, statuses

pytestmark = [pytest.mark.server, pytest.mark.pipeline]  # what it needs: the fast tier leaves it out

s3 = seaweed.module_server()  # the SeaweedFS fixture of this module


@pytest.fixture(params=["file", "s3"])
def backend(request, tmp_path) -> dict[str, str]:
    """The environment naming the store: the project's own .hilci-cache, or a fresh prefix on SeaweedFS."""
    if request.param == "file":
        return {}
    server = request.getfixturevalue("s3")
    return {"HILCI_STORE": server.url(f"t-{uuid.uuid4().hex[:8]}"), **server.env()}


def _entry_record(root: Path, stage: str = "gen") -> Path:
    """The entry record on the file backend (old layout: <stage>/<key>/entry.json; new: entries/<stage>/*.json)."""
    cache = root / ".hilci-cache"
    found = sorted((cache / "entries" / stage).glob("*.json")) + sorted((cache / stage).glob("*/entry.json"))
    assert found, f"no cache entry for {stage} under {cache}"
    return found[0]


def _add_file(record_path: Path, rel: str, data: bytes) -> None:
    """Make an entry name one more file, with content the entry really holds (its blob or its copy)."""
    record = json.loads(record_path.read_text())
    digest = sha256_bytes(data)
    record["files"][rel] = digest
    record_path.write_text(json.dumps(record))
    if record_path.name == "entry.json":  # the layout before the store
        target = Path(str(record_path.parent / "files") + "/" + rel) if not rel.startswith("/") else Path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    else:
        blob = record_path.parents[2] / "blobs" / digest[:2] / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)


@pytest.mark.parametrize("escape", ["../escape.txt", "ABSOLUTE"])
def test_an_entry_naming_a_path_outside_the_outputs_is_discarded_not_restored(project: Path, escape: str):
    """8.6: today `../escape.txt` is restored outside the workspace."""
    assert hilci(project, "run").returncode == 0
    target = project.parent / "escaped" / "abs.txt" if escape == "ABSOLUTE" else project.parent / "escape.txt"
    rel = str(target) if escape == "ABSOLUTE" else escape
    _add_file(_entry_record(project), rel, b"written by a poisoned cache entry\n")
    if target.exists():
        target.unlink()
    proc = hilci(project, "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not target.exists()
    assert statuses(project)["gen"] == "passed"
    assert "gen: cache entry" in proc.stdout and "outside the stage's declared outputs" in proc.stdout
    assert hilci(project, "run").returncode == 0
    assert statuses(project)["gen"] == "cached"


@pytest.mark.parametrize("field, value", [("files", ["out/gen/a.txt"]), ("created", "yesterday"),
                                          ("files", {"out/gen/a.txt": 42})])
def test_a_wrong_typed_entry_is_discarded_and_rebuilt(project: Path, field: str, value):
    """8.6: today a wrong-typed entry raises TypeError on every run until deleted by hand."""
    assert hilci(project, "run").returncode == 0
    path = _entry_record(project)
    record = json.loads(path.read_text())
    record[field] = value
    path.write_text(json.dumps(record))
    proc = hilci(project, "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert statuses(project)["gen"] == "passed"
    assert "gen: cache entry" in proc.stdout and "discarded" in proc.stdout
    assert hilci(project, "run").returncode == 0
    assert statuses(project)["gen"] == "cached"


def test_a_second_run_is_cached_on_either_backend_and_says_from_where(project: Path, backend: dict):
    proc = hilci(project, "run", env={**backend, "HILCI_COMMIT": "a1b2c3d4e5f6a7b8", "HILCI_BUILD": "#7"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shutil.rmtree(project / "out")
    proc = hilci(project, "run", env={**backend, "HILCI_COMMIT": "ffff0000ffff0000"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert statuses(project) == {"gen": "cached", "check": "cached", "final": "passed"}
    assert runs(project) == ["gen", "check", "final", "final"]
    assert (project / "out/gen/a.txt").read_text() == "input v1\ngen says hi\n"
    text = (project / "reports/junit/gen.xml").read_text()
    assert 'name="hilci.cached_from" value="cached from a1b2c3d4e5f6 (#7)"' in text
    assert junit.read_cases(project / "reports/junit/gen.xml")[0].status == "passed"
    assert "<system-out>cached from a1b2c3d4e5f6 (#7): restored from the store" in text
    assert "cached from a1b2c3d4e5f6 (#7)" in proc.stdout
    if backend:  # the S3 store holds it, not the project folder
        assert not (project / ".hilci-cache" / "entries").exists()
        assert seaweed.SECRET_KEY not in proc.stdout + proc.stderr


@pytest.mark.parametrize("damage", ["tamper_blob", "drop_blob", "truncate_record"])
def test_a_tampered_or_partial_entry_is_discarded_named_and_rebuilt(project: Path, damage: str):
    assert hilci(project, "run").returncode == 0
    record_path = _entry_record(project)
    record = json.loads(record_path.read_text())
    blob = project / ".hilci-cache" / "blobs" / record["files"]["out/gen/a.txt"][:2] / record["files"]["out/gen/a.txt"]
    if damage == "tamper_blob":
        blob.write_text("tampered\n")
    elif damage == "drop_blob":
        blob.unlink()
    else:
        record_path.write_text(record_path.read_text()[:40])
    proc = hilci(project, "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert statuses(project)["gen"] == "passed"
    assert "gen: cache entry" in proc.stdout and "discarded" in proc.stdout
    assert (project / "out/gen/a.txt").read_text() == "input v1\ngen says hi\n"
    assert hilci(project, "run").returncode == 0
    assert statuses(project)["gen"] == "cached"


def test_an_unreachable_store_runs_every_stage_as_a_miss_and_keeps_history_for_later(project: Path, s3):
    dead = {**s3.env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{seaweed.free_port()}", "HILCI_STORE_TIMEOUT_S": "2",
            "HILCI_STORE": s3.url(f"t-{uuid.uuid4().hex[:8]}")}
    proc = hilci(project, "run", env=dead, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert statuses(project) == {"gen": "passed", "check": "passed", "final": "passed"}
    assert "store unavailable" in proc.stdout
    assert seaweed.SECRET_KEY not in proc.stdout + proc.stderr
    spooled = list((project / ".hilci-cache" / "pending-history").rglob("*.json"))
    assert len(spooled) == 3
    back = {**dead, "AWS_ENDPOINT_URL": s3.endpoint}
    proc = hilci(project, "run", env=back)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 history record(s) kept while the store was away were sent" in proc.stdout
    assert not list((project / ".hilci-cache" / "pending-history").rglob("*.json"))
    proc = hilci(project, "history", env=back)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 stage runs" in proc.stdout


@pytest.mark.parametrize("how, message", [("bad_secret", "permission denied"), ("no_bucket", "bucket nobucket missing")])
def test_a_refusing_store_is_one_line_naming_the_url_without_credentials(project: Path, s3, how: str, message: str):
    env = s3.env()
    url = "s3://nobucket/ci" if how == "no_bucket" else s3.url("denied")
    if how == "bad_secret":
        env["AWS_SECRET_ACCESS_KEY"] = "wrong-secret-never-print-me"
    proc = hilci(project, "run", env={**env, "HILCI_STORE": url})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"store {url}" in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr
    for secret in ("wrong-secret-never-print-me", seaweed.SECRET_KEY):
        assert secret not in proc.stdout + proc.stderr


def test_credentials_in_the_url_are_never_shown(project: Path, s3):
    from hilci.store.backend import display_url

    assert display_url("s3://user:hunter2@bucket/ci?secret=x") == "s3://bucket/ci"
    proc = hilci(project, "store", "url", env={"HILCI_STORE": "file://me:hunter2@/tmp/x"})
    assert "hunter2" not in proc.stdout + proc.stderr


def test_two_writers_of_one_key_both_succeed_and_leave_one_valid_entry(tmp_path: Path, backend: dict, monkeypatch):
    """Two threads save the same stage and key at once; the entry reads back whole."""
    import threading

    from hilci.store.backend import Store
    from hilci.store.cache import StageCache
    from tests.fixture_pipelines import PIPELINE

    for k, v in backend.items():
        monkeypatch.setenv(k, v)
    root = make_project(tmp_path / "w", GOOD)
    (root / "out/gen").mkdir(parents=True)
    (root / "out/gen/a.txt").write_text("same output\n")
    (root / "j.xml").write_text(junit_text())
    (root / "log.txt").write_text("log\n")
    url = backend.get("HILCI_STORE") or (root / ".hilci-cache").as_uri()
    stage = PIPELINE.stage("gen")
    results = []

    def writer() -> None:
        cache = StageCache(root, Store(url))
        results.append(cache.save(stage, "k" * 64, {"format": 2}, root / "j.xml", root / "log.txt",
                                  {"commit": "c", "build": "b", "branch": "main"}))

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [True, True]
    hit = StageCache(root, Store(url)).lookup(stage, "k" * 64)
    assert hit is not None and hit.files == {"out/gen/a.txt": b"same output\n"}


def junit_text() -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.xml"
        junit.write_suite(path, "s", [junit.make_case("c", "hilci.gen")])
        return path.read_text()


def test_a_store_that_dies_during_the_run_turns_into_misses_and_loses_nothing(tmp_path: Path):
    """The server is stopped while the first stage runs: later stages run as misses, the run passes, says the
    store went away, and the records wait locally."""
    import time

    server = seaweed.start(tmp_path / "dying")
    try:
        root = make_project(tmp_path / "p", GOOD.replace("gen:\n", "gen:\n  sleep: 3\n"))
        env = {**server.env(), "HILCI_STORE": server.url("dies"), "HILCI_STORE_TIMEOUT_S": "2"}
        clean = {k: v for k, v in child_env().items() if not k.startswith("AWS_")}
        full = {**clean, "PYTHONPATH": str(REPO), "HILCI_PIPELINE": "tests.fixture_pipelines:PIPELINE", **env}
        proc = subprocess.Popen([sys.executable, "-m", "hilci", "run"], cwd=root, env=full, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while not (root / "gen.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        server.stop()
        out, _ = proc.communicate(timeout=240)
    finally:
        server.stop()
    assert proc.returncode == 0, out
    assert statuses(root) == {"gen": "passed", "check": "passed", "final": "passed"}
    assert "store unavailable during the run" in out
    assert (root / "out/check/ok.txt").is_file()
    assert len(list((root / ".hilci-cache" / "pending-history").rglob("*.json"))) == 3
