"""The store itself: the URL setting, blobs verified on read, gc that spares what protected branches use, and
engines reused from the store by `convert`; on the file backend and a real S3 server (SeaweedFS)."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from hilci.store.backend import CorruptBlob, Store, display_url, store_url
from hilci.store.gc import collect
from tests import seaweed
from tests.conftest import hilci
from tests.fixture_pipelines import make_project
from tests.test_runner import GOOD

pytestmark = [pytest.mark.server, pytest.mark.pipeline]  # what it needs: the fast tier leaves it out

s3 = seaweed.module_server()  # the SeaweedFS fixture of this module


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path, monkeypatch) -> Store:
    if request.param == "file":
        return Store((tmp_path / "store").as_uri())
    server = request.getfixturevalue("s3")
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    return Store(server.url(f"u-{uuid.uuid4().hex[:8]}"))


def test_the_url_comes_from_the_environment_then_hilci_yaml_then_the_local_folder(tmp_path, monkeypatch):
    from hilci.pipeline.config import Config

    monkeypatch.delenv("HILCI_STORE", raising=False)
    team = Config(tmp_path / "hilci.yaml", store="s3://team/ci")
    assert store_url(tmp_path, Config(tmp_path / "hilci.yaml")) == (tmp_path / ".hilci-cache").resolve().as_uri()
    assert store_url(tmp_path, team) == "s3://team/ci"
    monkeypatch.setenv("HILCI_STORE", "file:///mnt/hilci")
    assert store_url(tmp_path, team) == "file:///mnt/hilci"
    assert display_url("s3://AKIA:secret@minio.local:9000/bucket/ci?X-Amz-Signature=1") == \
        "s3://minio.local:9000/bucket/ci"


def test_hilci_yaml_names_the_store_and_a_bad_value_is_one_line(tmp_path):
    root = make_project(tmp_path / "p", GOOD + f"store: {(tmp_path / 'elsewhere').as_uri()}\n")
    proc = hilci(root, "run", env={"HILCI_BRANCH": "main"})  # a trusted branch writes the shared layout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list((tmp_path / "elsewhere" / "entries").iterdir()) and not (root / ".hilci-cache" / "entries").exists()
    (root / "hilci.yaml").write_text(GOOD + "store: [1, 2]\n")
    proc = hilci(root, "run")
    assert proc.returncode == 2 and "hilci.yaml: store: expected a URL" in proc.stderr


def test_blobs_are_content_addressed_and_verified_on_read(store: Store, tmp_path: Path):
    digest = store.put_blob_bytes(b"engine bytes")
    assert store.get_blob(digest) == b"engine bytes"
    assert store.put_blob_bytes(b"engine bytes") == digest  # idempotent
    store.write_bytes(f"blobs/{digest[:2]}/{digest}", b"tampered")
    with pytest.raises(CorruptBlob, match="does not match its sha256"):
        store.get_blob(digest)
    with pytest.raises(CorruptBlob, match="missing"):
        store.get_blob(digest)  # the tampered blob was removed: a rebuild uploads it again
    store.close()


def _entry(store: Store, stage: str, key: str, data: bytes, age_days: float) -> str:
    digest = store.put_blob_bytes(data)
    junit = store.put_blob_bytes(b"<testsuites/>")
    record = {"format": 2, "stage": stage, "key": key, "created": time.time() - age_days * 86400,
              "files": {"out/x": digest}, "junit": junit, "log": junit, "commit": "c", "build": "b", "branch": "main"}
    store.write_bytes(f"entries/{stage}/{key}.json", json.dumps(record).encode())
    return digest


def _history(store: Store, branch: str, stage: str, key: str, status: str, start: float) -> None:
    from hilci.store.history import make_record, record_path

    record = make_record(origin={"commit": f"{int(start):012d}", "branch": branch, "build": "#1"}, board="local",
                         rig="", stage=stage, start=start, duration_s=1.0, status=status, key=key,
                         measurements={}, environment={})
    store.write_bytes(record_path(record), json.dumps(record).encode())


def test_gc_evicts_old_and_oversized_entries_but_never_what_the_last_green_protected_run_uses(store: Store):
    now = time.time()
    old_used = _entry(store, "train", "a" * 64, b"checkpoint used by main's last green run", age_days=90)
    old_unused = _entry(store, "train", "b" * 64, b"old checkpoint nobody uses", age_days=90)
    _entry(store, "train", "c" * 64, b"recent checkpoint", age_days=1)
    _history(store, "main", "train", "b" * 64, "passed", now - 7200)  # an older green run of main
    _history(store, "main", "train", "a" * 64, "passed", now - 3600)  # the last green run of main
    _history(store, "main", "train", "d" * 64, "failed", now - 60)  # a later failure protects nothing
    report = collect(store, keep_days=30, max_gb=10, protect=("main",), now=now + 2 * 3600)
    assert report.evicted_entries == ["entries/train/" + "b" * 64 + ".json"]
    assert report.protected == ["entries/train/" + "a" * 64 + ".json"]
    assert store.get_blob(old_used) == b"checkpoint used by main's last green run"
    with pytest.raises(CorruptBlob):
        store.get_blob(old_unused)
    report = collect(store, keep_days=30, max_gb=0, protect=("main",), now=now + 2 * 3600)
    assert report.evicted_entries == ["entries/train/" + "c" * 64 + ".json"]  # over budget: all but protected
    assert store.exists("entries/train/" + "a" * 64 + ".json")
    store.close()


def test_store_gc_command(tmp_path: Path):
    root = make_project(tmp_path / "p", GOOD)
    assert hilci(root, "run", env={"HILCI_BRANCH": "main", "HILCI_COMMIT": "1" * 40}).returncode == 0
    proc = hilci(root, "store", "gc", "--keep-days", "0", "--max-gb", "0")
    assert proc.returncode == 0, proc.stderr
    assert "evicted 0 entries, kept 2 (2 protected by the last green run of a protected branch)" in proc.stdout
    proc = hilci(root, "store", "gc", "--keep-days", "-1")
    assert proc.returncode == 2 and "--keep-days and --max-gb must be >= 0" in proc.stderr


def _tiny_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_convert_reuses_a_stored_engine_built_from_the_same_onnx_on_the_same_board(tmp_path, monkeypatch, capsys):
    from hilci.conversion.engines import ONNXRUNTIME, build_engine
    from hilci.conversion.stages import _stored_engine
    from hilci.example import PIPELINE
    from hilci.stage.context import StageContext

    monkeypatch.delenv("HILCI_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    onnx_path = _tiny_onnx(tmp_path / "model.onnx")
    (tmp_path / "ref.npz").write_bytes(b"reference")
    ctx = StageContext(root=tmp_path, stage=PIPELINE.stage("convert"), config={}, pipeline=PIPELINE)
    built = []

    def counting_build(*args, **kw):
        built.append(args[1])
        return build_engine(*args, **kw)

    first = _stored_engine(ctx, onnx_path, ONNXRUNTIME, {}, {"reference": tmp_path / "ref.npz"}, counting_build)
    assert "built the onnxruntime engine" in capsys.readouterr().out
    os.remove(first)
    second = _stored_engine(ctx, onnx_path, ONNXRUNTIME, {}, {"reference": tmp_path / "ref.npz"}, counting_build)
    assert "reused the onnxruntime engine" in capsys.readouterr().out
    assert built == [ONNXRUNTIME] and second.read_bytes() == onnx_path.read_bytes()
    ctx.board = "agx-orin"  # another board: its own engine
    _stored_engine(ctx, onnx_path, ONNXRUNTIME, {}, {"reference": tmp_path / "ref.npz"}, counting_build)
    assert built == [ONNXRUNTIME, ONNXRUNTIME]
