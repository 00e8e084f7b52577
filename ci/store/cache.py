"""The stage cache on the store: skip a stage whose key has a passed entry, restore its outputs, else save one.

An entry is `entries/<stage>/<key>.json`, written after every blob it names, so two writers of one key both
succeed and leave one valid entry. Everything read is checked before anything is written: a record that is
unreadable, wrong-typed, names a path outside the stage's declared outputs, or points at a missing or
tampered blob is corrupt: discarded, named in `discarded`, and the stage rebuilt. A store that stops answering
turns the cache off for the rest of the run (`unavailable` says why); the stage runs as a miss.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hilci.pipeline.model import Stage
from hilci.store.backend import CorruptBlob, Store, StoreUnavailable, blob_path, is_digest
from hilci.store.keys import expand
from hilci.store.trust import DEFAULT_TRUSTED, Trust

ENTRY_FORMAT = 2


def entry_path(stage: str, key: str, ns: str = "") -> str:
    return f"{ns}entries/{stage}/{key}.json"


@dataclass
class Hit:
    """A whole, verified entry, its blobs already in memory."""

    stage: str
    key: str
    record: dict
    files: dict[str, bytes]
    junit: bytes
    log: bytes
    ns: str = ""  # the namespace the entry came from ('' = the shared layout trusted branches write)

    @property
    def created(self) -> float:
        return float(self.record["created"])

    @property
    def origin(self) -> str:
        """'cached from <commit> (<build>)', as the JUnit and the summary say it."""
        return f"cached from {self.record['commit'][:12]} ({self.record['build']})"


class StageCache:
    """Entries of one store, read and written for one run; failures of the store never fail the run."""

    def __init__(self, root: Path, store: Store, trust: Trust | None = None) -> None:
        self.root = root
        self.store = store
        self.trust = trust or Trust("main", DEFAULT_TRUSTED)
        self.discarded: list[str] = []  # why entries were thrown away in this run, for the summary
        self.unavailable = ""  # why the store was dropped for this run ('' while it answers)
        self.timings: dict[str, float] = {}  # seconds spent in the store per stage (lookup, restore, save)

    @property
    def usable(self) -> bool:
        return not self.unavailable

    def _drop(self, exc: StoreUnavailable) -> None:
        if not self.unavailable:
            self.unavailable = f"{exc}; stages run as misses, nothing is cached"

    def _timed(self, stage: str, t0: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t0

    # -- reading --------------------------------------------------------------------------------------------
    def read_record(self, stage: Stage, key: str) -> dict | None:
        """The entry's record if present, well-formed and written by a branch this build may restore from."""
        found = self.find(stage, key)
        return found[0] if found else None

    def find(self, stage: Stage, key: str) -> tuple[dict, str] | None:
        """(record, namespace) of the first usable entry in the namespaces this build reads; a malformed one,
        or one written by a branch not allowed there, is discarded and named."""
        for ns in self.trust.read_ns:
            data = self.store.read_bytes(entry_path(stage.name, key, ns))
            if data is None:
                continue
            problem, record = check_record(data, stage, key)
            if not problem and not self.trust.may_restore(record["branch"], ns):
                problem = (f"written by branch {record['branch']!r}, which may not write what "
                           f"{self.trust.branch!r} restores")
            if problem:
                self._discard(stage.name, key, problem, ns)
                continue
            return record, ns
        return None

    def blobs_present(self, record: dict, ns: str) -> bool:
        """Whether every blob an entry names is in its namespace or the shared layout."""
        where = (ns, "") if ns else ("",)
        return all(any(self.store.exists(blob_path(d, n)) for n in where)
                   for d in [*record["files"].values(), record["junit"], record["log"]])

    def lookup(self, stage: Stage, key: str) -> Hit | None:
        """A whole, verified entry for (stage, key), or None; any store failure is a miss."""
        if not self.usable:
            return None
        t0 = time.perf_counter()
        try:
            found = self.find(stage, key)
            if found is None:
                return None
            record, ns = found
            where, own = ((ns, "") if ns else ("",)), self.trust.write_ns

            def blob(digest: str) -> bytes:
                return self.store.get_blob(digest, where, own)

            try:
                files = {rel: blob(d) for rel, d in record["files"].items()}
                junit, log = blob(record["junit"]), blob(record["log"])
            except CorruptBlob as exc:
                self._discard(stage.name, key, str(exc), ns)
                return None
            return Hit(stage.name, key, record, files, junit, log, ns)
        except StoreUnavailable as exc:
            self._drop(exc)
            return None
        finally:
            self._timed(stage.name, t0)

    def _discard(self, stage: str, key: str, problem: str, ns: str = "") -> None:
        self.discarded.append(f"{stage}: cache entry {key[:12]} discarded ({problem}); rebuilding")
        if ns != self.trust.write_ns:  # not ours to delete (a branch build reading the shared layout)
            return
        try:
            self.store.delete(entry_path(stage, key, ns))
        except StoreUnavailable as exc:
            self._drop(exc)

    def restore(self, hit: Hit, stage: Stage) -> None:
        """Replace the stage's outputs in the tree with the entry's files (all inside the declared outputs)."""
        t0 = time.perf_counter()
        for out in stage.outputs:
            target = self.root / out
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        for rel, data in hit.files.items():
            dest = self.root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        self._timed(stage.name, t0)

    # -- writing --------------------------------------------------------------------------------------------
    def save(self, stage: Stage, key: str, parts: dict, junit: Path, log: Path, origin: dict[str, Any]) -> bool:
        """Upload the stage's outputs, JUnit and log as blobs, then its record; False when the store failed."""
        if not self.usable:
            return False
        t0 = time.perf_counter()
        try:
            ns = self.trust.write_ns
            present = tuple(o for o in stage.outputs if (self.root / o).exists())
            found = expand(self.root, present, f"stage {stage.name!r} outputs")
            kept = [p for p in found if not _through_symlink(self.root, p)]
            if len(kept) < len(found):  # a link's target is not the stage's output: never uploaded, never followed
                self.discarded.append(f"{stage.name}: {len(found) - len(kept)} symlink(s) in its outputs not saved "
                                      f"({', '.join(str(p.relative_to(self.root)) for p in found if p not in kept)[:200]})")
            files = {str(p.relative_to(self.root)): self.store.put_blob(p, ns) for p in kept}
            record = {"format": ENTRY_FORMAT, "stage": stage.name, "key": key, "created": time.time(),
                      "files": files, "junit": self.store.put_blob(junit, ns), "log": self.store.put_blob(log, ns),
                      "parts": parts, "commit": str(origin.get("commit", "unknown")),
                      "branch": str(origin.get("branch", "unknown")), "build": str(origin.get("build", "local")),
                      "sizes": {rel: (self.root / rel).stat().st_size for rel in files}}
            self.store.write_bytes(entry_path(stage.name, key, ns),
                                   json.dumps(record, indent=1, sort_keys=True, default=str).encode())
            return True
        except StoreUnavailable as exc:
            self._drop(exc)
            return False
        finally:
            self._timed(stage.name, t0)

    def latest_record(self, stage: Stage, board: str | None = None) -> dict | None:
        """The newest well-formed entry of a stage (any key; on `board` if given): what a miss is explained
        against."""
        try:
            listed = sorted((item for ns in self.trust.read_ns for item in self.store.list(f"{ns}entries/{stage.name}")),
                            key=lambda item: item.mtime, reverse=True)
        except StoreUnavailable as exc:
            self._drop(exc)
            return None
        for item in listed[:20]:
            data = self.store.read_bytes(item.rel)
            key = posixpath.basename(item.rel)[:-len(".json")]
            if data is not None:
                problem, record = check_record(data, stage, key)
                parts = record.get("parts") if not problem else None
                if parts and (board is None or (isinstance(parts, dict) and parts.get("board") == board)):
                    return record
        return None


def _through_symlink(root: Path, path: Path) -> bool:
    """Whether `path` is a symlink or lies under one (below `root`)."""
    rel = path.relative_to(root)
    current = root
    for part in rel.parts:
        current = current / part
        if current.is_symlink():
            return True
    return False


def check_record(data: bytes, stage: Stage, key: str) -> tuple[str, dict]:
    """Why an entry record cannot be used ('' when it can), and the record."""
    try:
        record = json.loads(data)
    except ValueError as exc:
        return f"unreadable entry record: {exc}", {}
    if not isinstance(record, dict):
        return "entry record is not a mapping", {}
    if record.get("format") != ENTRY_FORMAT or record.get("key") != key or record.get("stage") != stage.name:
        return "entry record does not match its key", {}
    files = record.get("files")
    if not isinstance(files, dict) or not all(isinstance(k, str) and is_digest(v) for k, v in files.items()):
        return "entry record: files is not a mapping of path to sha256", {}
    for name in ("junit", "log"):
        if not is_digest(record.get(name)):
            return f"entry record: {name} is not a sha256", {}
    if not isinstance(record.get("created"), (int, float)) or isinstance(record.get("created"), bool):
        return "entry record: created is not a time", {}
    for name in ("commit", "build", "branch"):
        if not isinstance(record.get(name), str):
            return f"entry record: {name} is not text", {}
    for rel in files:
        if not inside_outputs(rel, stage.outputs):
            return f"{rel} is outside the stage's declared outputs", {}
    return "", record


def inside_outputs(rel: str, outputs: tuple[str, ...]) -> bool:
    """Whether a relative path lies inside one of the declared outputs (no '..', no absolute path)."""
    if not rel or rel.startswith("/") or "\\" in rel or rel != posixpath.normpath(rel):
        return False
    if any(part in ("", ".", "..") for part in rel.split("/")):
        return False
    for out in outputs:
        out = out.rstrip("/")
        if rel == out or rel.startswith(out + "/") or fnmatch.fnmatchcase(rel, out):
            return True
    return False


def drop_entry(store: Store, stage: str, key: str, ns: str = "") -> bool:
    """Delete one entry (its blobs stay for gc): a regressed run's, so the next run measures again. False when
    the store did not answer."""
    try:
        store.delete(entry_path(stage, key, ns))
    except StoreUnavailable:
        return False
    return True
