"""The content-addressed stage cache: skip a stage whose inputs hash the same as a passed run, restore its outputs.

A key covers the stage's definition, its hilci.yaml section, the rig (matrix stages), every declared input
file's content and the installed versions of its tools. An entry is a folder written whole and then renamed
into place; on lookup every file is checked against the entry's own record, so a partial or corrupt entry is
discarded and rebuilt, never used.
"""

from __future__ import annotations

import glob
import json
import platform
import shutil
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ci.digest import sha256_file, sha256_json
from ci.model import Stage
from ci.stage import UsageError

ENTRY_FILE = "entry.json"
FORMAT = 1


def expand(root: Path, patterns: tuple[str, ...], what: str) -> list[Path]:
    """Files named by repo-relative paths, directories or globs; a literal path that is missing is an error."""
    files: set[Path] = set()
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = [Path(p) for p in glob.glob(str(root / pattern), recursive=True)]
        else:
            literal = root / pattern
            if not literal.exists():
                raise UsageError(f"{what}: input file {pattern} is missing")
            matches = [literal]
        for match in matches:
            if match.is_dir():
                files.update(p for p in match.rglob("*") if p.is_file())
            elif match.is_file():
                files.add(match)
    return sorted(f for f in files if "__pycache__" not in f.parts)


def tool_versions(tools: tuple[str, ...]) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for tool in tools:
        try:
            versions[tool] = metadata.version(tool)
        except metadata.PackageNotFoundError:
            versions[tool] = "not installed"
    return versions


def stage_key(root: Path, stage: Stage, config: dict[str, Any], rig: Path | None) -> tuple[str, dict]:
    """The cache key of a stage and the record it was computed from (kept in the entry for explanation)."""
    inputs = {str(p.relative_to(root)): sha256_file(p) for p in expand(root, stage.inputs, f"stage {stage.name!r}")}
    record = {
        "format": FORMAT,
        "stage": {"name": stage.name, "entry": stage.entry, "outputs": list(stage.outputs)},
        "config": config,
        "rig": sha256_file(rig) if (stage.matrix and rig is not None and rig.is_file()) else None,
        "inputs": inputs,
        "tools": tool_versions(stage.tools),
    }
    return sha256_json(record), record


@dataclass
class Hit:
    """A valid cache entry: where it is and what it restored."""

    path: Path
    files: dict[str, str]
    junit: Path
    log: Path
    created: float


class StageCache:
    """A folder of entries, one per (stage, key); all reads validate, all writes are atomic."""

    def __init__(self, root: Path, cache_dir: Path) -> None:
        self.root = root
        self.dir = cache_dir
        if self.dir.exists() and not self.dir.is_dir():
            raise UsageError(f"cache {self.dir} is not a directory")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            probe = self.dir / ".probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise UsageError(f"cache {self.dir} is unreadable or unwritable ({exc.strerror})") from None
        self.discarded: list[str] = []  # why entries were thrown away in this run, for the summary

    def _entry_dir(self, stage: str, key: str) -> Path:
        return self.dir / stage / key

    def lookup(self, stage: str, key: str) -> Hit | None:
        """The entry for (stage, key) if it is whole; a broken entry is removed and reported as a miss."""
        path = self._entry_dir(stage, key)
        if not path.exists():
            return None
        problem = _check_entry(path, key)
        if problem:
            self.discarded.append(f"{stage}: cache entry {key[:12]} discarded ({problem}); rebuilding")
            shutil.rmtree(path, ignore_errors=True)
            return None
        entry = json.loads((path / ENTRY_FILE).read_text())
        return Hit(path=path, files=entry["files"], junit=path / "junit.xml", log=path / "stage.log",
                   created=entry["created"])

    def restore(self, hit: Hit, outputs: tuple[str, ...]) -> None:
        """Replace the stage's outputs in the tree with the entry's copy."""
        for out in outputs:
            target = self.root / out
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        for rel in hit.files:
            dest = self.root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(hit.path / "files" / rel, dest)

    def store(self, stage: Stage, key: str, record: dict, junit: Path, log: Path) -> Path:
        """Copy the stage's outputs, JUnit and log into a new entry; replace any entry with the same key."""
        final = self._entry_dir(stage.name, key)
        tmp = final.parent / f".tmp-{key[:12]}-{time.monotonic_ns()}"
        files: dict[str, str] = {}
        try:
            for src in expand(self.root, tuple(o for o in stage.outputs if (self.root / o).exists()),
                              f"stage {stage.name!r} outputs"):
                rel = str(src.relative_to(self.root))
                dest = tmp / "files" / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
                files[rel] = sha256_file(dest)
            tmp.mkdir(parents=True, exist_ok=True)
            shutil.copy2(junit, tmp / "junit.xml")
            shutil.copy2(log, tmp / "stage.log")
            entry = {"format": FORMAT, "key": key, "created": time.time(), "files": files,
                     "junit": sha256_file(tmp / "junit.xml"), "record": record}
            (tmp / ENTRY_FILE).write_text(json.dumps(entry, indent=1, sort_keys=True, default=str))
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return final


def _check_entry(path: Path, key: str) -> str:
    """Why an entry cannot be used ('' when it is whole)."""
    try:
        entry = json.loads((path / ENTRY_FILE).read_text())
    except FileNotFoundError:
        return f"no {ENTRY_FILE}: partial entry"
    except (OSError, ValueError) as exc:
        return f"unreadable {ENTRY_FILE}: {exc}"
    if not isinstance(entry, dict) or entry.get("key") != key or entry.get("format") != FORMAT:
        return "entry record does not match its key"
    expected = dict(entry.get("files") or {})
    expected_junit = entry.get("junit")
    checks = [("junit.xml", path / "junit.xml", expected_junit)]
    checks += [(rel, path / "files" / rel, digest) for rel, digest in expected.items()]
    for name, file, digest in checks:
        if not file.is_file():
            return f"{name} missing"
        if sha256_file(file) != digest:
            return f"{name} does not match its recorded sha256"
    if not (path / "stage.log").is_file():
        return "stage.log missing"
    return ""
