"""The store's smaller faults (issue 16, 7): partial uploads, gc against a reusing writer, a missing upstream,
symlinks in outputs, file modes, a credential in the URL, a full disk."""

from __future__ import annotations

import errno
import json
import os
import time
import uuid
from pathlib import Path

import pytest

from hilci.store.backend import Store, StoreDenied, blob_path
from hilci.store.cache import StageCache
from hilci.store.gc import BLOB_GRACE_S, collect
from tests import seaweed
from tests.fixture_pipelines import PIPELINE, make_project
from tests.test_runner import GOOD, runs
from tests.test_store_cache import hilci


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_gc_removes_what_killed_writers_left_and_keeps_what_a_writer_may_still_finish(tmp_path: Path):
    store = Store((tmp_path / "s").as_uri())
    store.write_bytes("entries/gen/x.json", b"{}")
    stale, fresh = tmp_path / "s" / "blobs" / ".tmp-killed", tmp_path / "s" / "blobs" / ".tmp-writing"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a blob")
    fresh.write_bytes(b"half a blob")
    _age(stale, BLOB_GRACE_S + 60)
    report = collect(store, keep_days=30, max_gb=50, protect=("main",))
    assert not stale.exists() and fresh.exists() and report.partial == 1
    assert "removed 1 partial upload(s)" in report.text(store.display)


def test_gc_keeps_an_old_blob_that_a_writer_just_decided_to_reuse(tmp_path: Path):
    """Today put_blob only checks the blob exists: gc then deletes it (old, unreferenced) before the entry that
    names it is written."""
    store = Store((tmp_path / "s").as_uri())
    data = b"an old checkpoint, unreferenced since its entry was evicted"
    digest = store.put_blob_bytes(data)
    _age(tmp_path / "s" / blob_path(digest), BLOB_GRACE_S + 60)
    assert store.put_blob_bytes(data) == digest  # a writer reuses it; its entry is not written yet
    collect(store, keep_days=30, max_gb=50, protect=("main",))
    assert store.get_blob(digest) == data


def test_folder_store_files_are_readable_by_the_team_not_0600(tmp_path: Path):
    store = Store((tmp_path / "s").as_uri())
    store.write_bytes("entries/gen/x.json", b"{}")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "s" / "entries" / "gen" / "x.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_full_disk_is_one_line_naming_the_cache(tmp_path: Path, monkeypatch):
    store = Store((tmp_path / "s").as_uri())

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("hilci.store.backend.os.replace", full)
    with pytest.raises(StoreDenied) as caught:
        store.write_bytes("blobs/aa/bb", b"x" * 100)
    assert str(caught.value) == f"cache {tmp_path / 's'}: cannot write blobs/aa/bb (disk full)"
    assert not [p for p in (tmp_path / "s").rglob(".tmp-*")]


def test_symlinks_in_outputs_are_not_followed_on_save(tmp_path: Path):
    root = make_project(tmp_path / "p", GOOD)
    secret = tmp_path / "secret.txt"
    secret.write_text("not an output\n")
    (root / "out" / "gen").mkdir(parents=True)
    (root / "out" / "gen" / "a.txt").write_text("gen says hi\n")
    (root / "out" / "gen" / "link.txt").symlink_to(secret)
    (root / "out" / "gen" / "dir").symlink_to(tmp_path, target_is_directory=True)
    junit, log = root / "j.xml", root / "l.log"
    junit.write_text("<testsuites/>")
    log.write_text("log\n")
    store = Store((tmp_path / "s").as_uri())
    cache = StageCache(root, store)
    assert cache.save(PIPELINE.stage("gen"), "k" * 64, {}, junit, log, {"branch": "main"})
    record = json.loads((tmp_path / "s" / "entries" / "gen" / f"{'k' * 64}.json").read_text())
    assert list(record["files"]) == ["out/gen/a.txt"]
    assert not any(b"not an output" in p.read_bytes() for p in (tmp_path / "s" / "blobs").rglob("*") if p.is_file())
    assert "symlink(s) in its outputs not saved" in cache.discarded[0]


def test_a_stage_whose_upstream_outputs_are_neither_here_nor_stored_rebuilds_them(tmp_path: Path):
    """Today the stage runs without them (the model path: 'checkpoint missing')."""
    root = make_project(tmp_path / "p", GOOD)
    env = {"HILCI_STORE": (tmp_path / "empty").as_uri(), "HILCI_BRANCH": "main"}
    proc = hilci(root, "stage", "check", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert runs(root) == ["gen", "check"] and (root / "out" / "gen" / "a.txt").is_file()
    assert "rebuilding gen first" in proc.stdout


def test_a_credential_in_the_store_url_is_never_printed_nor_written(tmp_path: Path):
    root = make_project(tmp_path / "p", GOOD)
    env = {"HILCI_STORE": "s3://AKIAEXAMPLE:hunter2secret@hilci/ci", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
           "HILCI_STORE_TIMEOUT_S": "2"}
    proc = hilci(root, "plan", "--json", "--output", "reports/plan.json", env=env)
    written = "".join(p.read_text(errors="replace") for p in (root / "reports").rglob("*") if p.is_file())
    assert "hunter2secret" not in proc.stdout + proc.stderr + written
    assert "AKIAEXAMPLE" not in proc.stdout + proc.stderr + written


s3 = seaweed.module_server()  # the SeaweedFS fixture of this module


def test_on_s3_a_reused_blob_is_touched_and_gc_aborts_unfinished_multipart_uploads(s3, monkeypatch):
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    store = Store(s3.url(f"t-{uuid.uuid4().hex[:8]}"))
    data = b"a blob two writers produce"
    digest = store.put_blob_bytes(data)
    assert store.put_blob_bytes(data) == digest and not store.down  # the reuse touched it, the store stays up
    assert store.get_blob(digest) == data
    bucket, _, prefix = store.base.partition("/")
    store.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=f"{prefix}/blobs/ab/killed")
    assert store.clean_partial(time.time() + 60, dry_run=True) == 1
    assert store.clean_partial(time.time() - 3600) == 0  # younger than the grace period: a writer may finish
    assert store.clean_partial(time.time() + 60) == 1
    assert store.clean_partial(time.time() + 60) == 0
    store.close()
