"""Manifests beside artifacts, and `hilci trace` following them back to commit and data."""

from __future__ import annotations

import json

import pytest

from hilci import cli
from hilci.conversion import manifest, trace


def _chain(tmp_path):
    """checkpoint <- onnx <- engine, each with a manifest, like the three stages write them."""
    (tmp_path / "artifacts").mkdir()
    ckpt = tmp_path / "artifacts" / "model.pt"
    ckpt.write_bytes(b"weights")
    manifest.write_manifest(ckpt, "checkpoint", root=tmp_path, settings={"epochs": 3},
                            inputs={"data": {"source": "sklearn.datasets.load_digits", "sha256": "d" * 64},
                                    "code": {"path": "conversion/", "sha256": "c" * 64}})
    onnx_file = tmp_path / "artifacts" / "model.onnx"
    onnx_file.write_bytes(b"onnx")
    manifest.write_manifest(onnx_file, "qdq-onnx", root=tmp_path, inputs={"checkpoint": ckpt})
    engine = tmp_path / "artifacts" / "engine.onnx"
    engine.write_bytes(b"onnx")
    manifest.write_manifest(engine, "engine", root=tmp_path, inputs={"onnx": onnx_file},
                            settings={"backend": "onnxruntime"})
    return ckpt, onnx_file, engine


def test_manifest_records_hashes_links_versions_device(tmp_path):
    ckpt, onnx_file, engine = _chain(tmp_path)
    doc = manifest.read_manifest(engine)
    assert doc["sha256"] == manifest.sha256_file(engine) and doc["size"] == 4
    assert doc["inputs"]["onnx"] == {"path": "artifacts/model.onnx", "sha256": manifest.sha256_file(onnx_file),
                                     "manifest": "artifacts/model.onnx.manifest.json"}
    assert doc["settings"] == {"backend": "onnxruntime"}
    assert doc["versions"]["python"] and doc["device"]["cpu"]
    assert set(doc["git"]) == {"commit", "dirty"}
    assert manifest.verify(engine)
    engine.write_bytes(b"other")
    assert not manifest.verify(engine)


def test_git_commit_outside_a_repository_is_unknown(tmp_path):
    assert manifest.git_commit(tmp_path) == {"commit": "unknown", "dirty": None}


def test_code_hash_follows_file_contents(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    first = manifest.sha256_tree(tmp_path, ["**/*.py"])
    (tmp_path / "a.py").write_text("x = 2\n")
    assert manifest.sha256_tree(tmp_path, ["**/*.py"]) != first
    assert manifest.sha256_json({"a": 1, "b": 2}) == manifest.sha256_json({"b": 2, "a": 1})


def test_missing_or_foreign_manifest_is_named(tmp_path):
    art = tmp_path / "x.onnx"
    art.write_bytes(b"x")
    with pytest.raises(manifest.ManifestError, match="x.onnx.manifest.json: no manifest"):
        manifest.read_manifest(art)
    manifest.manifest_path(art).write_text(json.dumps({"hello": 1}))
    with pytest.raises(manifest.ManifestError, match="not a hilci manifest"):
        manifest.read_manifest(art)
    with pytest.raises(manifest.ManifestError, match="no such artifact"):
        manifest.write_manifest(tmp_path / "absent", "engine")


def test_trace_follows_the_chain_to_data_and_code(tmp_path):
    _, _, engine = _chain(tmp_path)
    tree = trace.lineage(engine, tmp_path)
    assert tree.status == "ok" and tree.doc["kind"] == "engine"
    onnx_node = tree.children[0]
    assert (onnx_node.name, onnx_node.status, onnx_node.doc["kind"]) == ("onnx", "ok", "qdq-onnx")
    ckpt_node = onnx_node.children[0]
    assert ckpt_node.doc["kind"] == "checkpoint"
    assert {c.name for c in ckpt_node.children} == {"data", "code"}
    text = trace.render(tree)
    assert "sklearn.datasets.load_digits" in text and "commit " in text and "checkpoint" in text
    assert trace.problems(tree) == []


def test_trace_flags_a_changed_input(tmp_path):
    ckpt, _, engine = _chain(tmp_path)
    ckpt.write_bytes(b"retrained behind our back")
    problems = trace.problems(trace.lineage(engine, tmp_path))
    assert problems == ["artifacts/model.pt: CHANGED"]


def test_hilci_trace_command(tmp_path, capsys, monkeypatch):
    _, _, engine = _chain(tmp_path)
    assert cli.main(["trace", str(engine), "--root", str(tmp_path)]) == 0
    assert "engine.onnx: engine" in capsys.readouterr().out
    assert cli.main(["trace", "artifacts/engine.onnx", "--root", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["inputs"][0]["inputs"][0]["kind"] == "checkpoint"
    engine.write_bytes(b"tampered")
    assert cli.main(["trace", str(engine), "--root", str(tmp_path)]) == 1
    assert cli.main(["trace", str(tmp_path / "nothing.onnx")]) == 2
    assert "no such artifact" in capsys.readouterr().err
