"""Engines and TensorRT timing caches in the store, so a later build on the same board reuses them.

An engine is `engines/<key>.json` naming its files' blobs (the engine, its manifest, the timing cache); the key
is the runtime and its version, the board or GPU, the platform (compute capability, CUDA, L4T release), the ONNX
file's sha256 and the builder flags (defaults merged with hilci.yaml's). A timing cache
is also kept by runtime version and GPU alone (`engines/timing-<key>.json`): it speeds up building an engine
for a changed ONNX on that GPU. The store failing never fails a build: the engine is built as without it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from hilci.stage.run import load_config
from hilci.store.backend import CorruptBlob, Store, StoreUnavailable, configured_url, is_digest, store_url
from hilci.store.trust import Trust, trust_for
from hilci.util.digest import sha256_json
from hilci.util.provenance import provenance


def engine_key(*, backend: str, runtime_version: str, device: str, onnx_sha256: str, settings: dict,
               platform: dict | None = None) -> str:
    """`platform`: what else the engine is only valid for (TensorRT: compute capability, CUDA, L4T release)."""
    return sha256_json({"backend": backend, "runtime": runtime_version, "device": device, "onnx": onnx_sha256,
                        "settings": settings, **({"platform": platform} if platform is not None else {})})


def timing_key(*, backend: str, runtime_version: str, device: str, platform: dict | None = None) -> str:
    return "timing-" + sha256_json({"backend": backend, "runtime": runtime_version, "device": device,
                                    **({"platform": platform} if platform is not None else {})})


class EngineStore:
    """Fetch and put engine files by key; every failure is a note, never an exception."""

    def __init__(self, store: Store | None, origin: dict, trust: Trust | None = None) -> None:
        self.store = store
        self.origin = origin
        self.trust = trust or Trust(str(origin.get("branch", "local")), ("*",))
        self.notes: list[str] = []

    @classmethod
    def for_project(cls, root: Path, pipeline) -> EngineStore:
        from hilci.store.backend import StoreDenied

        try:
            config = load_config(root, pipeline)
            store = Store(store_url(root, config))
            store.probe()
        except (StoreUnavailable, StoreDenied, Exception) as exc:  # a build never fails for its cache
            engines = cls(None, {})
            engines.notes.append(f"engine store unavailable ({exc}); building without it")
            return engines
        origin = provenance(root).as_dict()
        shared = configured_url(root, config) is not None
        return cls(store, origin, trust_for(origin["branch"], config) if shared else None)

    def fetch(self, key: str, out_dir: Path) -> dict | None:
        """Write the stored files of `key` into `out_dir`; returns the record (None: not stored or unusable)."""
        if self.store is None:
            return None
        try:
            for ns in self.trust.read_ns:
                data = self.store.read_bytes(f"{ns}engines/{key}.json")
                if data is not None:
                    break
            else:
                return None
            record = json.loads(data)
            files = record.get("files") if isinstance(record, dict) else None
            if isinstance(files, dict) and not self.trust.may_restore(str(record.get("branch", "unknown")), ns):
                self.notes.append(f"engine entry {key[:12]} not reused (written by branch "
                                  f"{record.get('branch', 'unknown')!r}, not trusted)")
                return None
            if not isinstance(files, dict) or not all(isinstance(n, str) and "/" not in n and n not in ("", ".", "..")
                                                      and is_digest(d) for n, d in files.items()):
                self.notes.append(f"engine entry {key[:12]} malformed; discarded")
                if ns == self.trust.write_ns:
                    self.store.delete(f"{ns}engines/{key}.json")
                return None
            where = (ns, "") if ns else ("",)
            blobs = {name: self.store.get_blob(d, where, self.trust.write_ns) for name, d in files.items()}
        except (StoreUnavailable, CorruptBlob, ValueError) as exc:
            self.notes.append(f"engine entry {key[:12]} not reused ({exc})")
            return None
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, blob in blobs.items():
            (out_dir / name).write_bytes(blob)
        return record

    def put(self, key: str, files: list[Path], extra: dict | None = None) -> bool:
        if self.store is None:
            return False
        try:
            ns = self.trust.write_ns
            record = {"key": key, "created": time.time(), "commit": self.origin.get("commit", "unknown"),
                      "build": self.origin.get("build", "local"), "branch": self.origin.get("branch", "unknown"),
                      "files": {p.name: self.store.put_blob(p, ns) for p in files if p.is_file()}, **(extra or {})}
            self.store.write_bytes(f"{ns}engines/{key}.json", json.dumps(record, indent=1, sort_keys=True).encode())
            return True
        except StoreUnavailable as exc:
            self.notes.append(f"engine not stored ({exc})")
            return False

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
