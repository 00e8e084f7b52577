"""Manifests: a JSON file beside every artifact, so any engine can be traced back to its commit and data.

`ARTIFACT.manifest.json` records the artifact's sha256, the sha256 of each input (with a link to the input's
own manifest when it has one), the git commit, package versions, the device and the settings that made it.
This module imports neither torch nor modelopt: a Jetson writes engine manifests with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hilci.errors import SettingsError
from hilci.util.digest import sha256_file, sha256_json  # noqa: F401 - part of the manifest API
from hilci.util.provenance import git
from hilci.util.settings import build, integer, mapping, settings, text
from hilci.util.versions import installed_versions

SUFFIX = ".manifest.json"
FORMAT = 1
UNKNOWN = "unknown"
VERSIONED = ("torch", "nvidia-modelopt", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "cuda-python",
             "pycuda", "numpy", "scikit-learn")


class ManifestError(ValueError):
    """A manifest is missing, unreadable or does not match its artifact; the message names the file."""


_SHA256 = re.compile(r"[0-9a-f]{64}")


@settings
class ManifestFields:
    """The fields of a manifest a reader relies on, typed: a hand-edited or foreign file is one clear line."""

    format: int = integer(FORMAT, ge=1, le=FORMAT)
    artifact: str = text("", nonempty=False)
    kind: str = text()
    sha256: str = text()
    size: int = integer(0, ge=0, le=2**63)
    created: str = text("", nonempty=False)
    git: dict = mapping()
    inputs: dict = mapping()
    versions: dict = mapping()
    device: dict = mapping()
    settings: dict = mapping()
    metrics: dict = mapping()


def check_manifest(doc: Any, path: Path | str) -> dict[str, Any]:
    """`doc` if it is a sound manifest, else ManifestError naming the file and the field."""
    if not isinstance(doc, dict) or "sha256" not in doc or "kind" not in doc:
        raise ManifestError(f"{path}: not a hilci manifest (no sha256/kind)")
    try:
        build(ManifestFields, doc, file=path)
    except SettingsError as exc:
        raise ManifestError(str(exc)) from None
    if not _SHA256.fullmatch(doc["sha256"]):
        raise ManifestError(f"{path}: sha256: expected 64 lowercase hex digits, got {doc['sha256'][:40]!r}")
    for name, record in doc["inputs"].items():
        if not isinstance(record, dict):
            raise ManifestError(f"{path}: inputs.{name}: expected a mapping (path, sha256), got {record!r}"[:200])
        for key in ("path", "sha256", "manifest", "source"):
            if key in record and not isinstance(record[key], str):
                raise ManifestError(f"{path}: inputs.{name}.{key}: expected a string, got {record[key]!r}"[:200])
    return doc


def manifest_path(artifact: Path) -> Path:
    """Where an artifact's manifest lives: beside it, `<name>.manifest.json`."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + SUFFIX)


def sha256_tree(root: Path, patterns: Iterable[str]) -> str:
    """One hash over files matched by globs under `root` (relative names and contents, sorted)."""
    root = Path(root)
    files = sorted({p for pat in patterns for p in root.glob(pat) if p.is_file() and "__pycache__" not in p.parts})
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def code_hash() -> str:
    """sha256 of the code of `conversion/` (every .py file), the code that makes every model artifact."""
    return sha256_tree(Path(__file__).resolve().parent, ["**/*.py"])


def git_commit(cwd: Path | None = None) -> dict[str, Any]:
    """The commit HEAD points at and whether the tree is dirty; "unknown" when there is no git or no commit."""
    cwd = Path(cwd or Path(__file__).resolve().parent)
    commit = git(cwd, "rev-parse", "--verify", "-q", "HEAD")
    dirty = bool(git(cwd, "status", "--porcelain", "--untracked-files=no")) if commit else None
    return {"commit": commit or UNKNOWN, "dirty": dirty}


def versions(names: Iterable[str] = VERSIONED) -> dict[str, str]:
    """Installed versions by distribution name (read from metadata, nothing imported)."""
    found = installed_versions(names)
    torch = sys.modules.get("torch")  # only when already imported by the caller
    if torch is not None:
        found["cuda"] = getattr(torch.version, "cuda", None) or "none"
    return found


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").replace("\0", "").strip()
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (x86 'model name', Arm 'Hardware'/'CPU part'), else platform."""
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Model"):
        for line in text.splitlines():
            if line.startswith(key) and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or UNKNOWN


def jetson_info(timeout_s: float = 5.0) -> dict[str, str] | None:
    """Jetson model (device tree) and power mode (`nvpmodel -q`); None on anything that is not a Jetson."""
    model = _read("/proc/device-tree/model")
    if not model or "jetson" not in model.lower() and not Path("/etc/nv_tegra_release").exists():
        return None
    info = {"model": model, "power_mode": UNKNOWN}
    try:
        out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=timeout_s)
        for line in out.stdout.splitlines():
            if "Power Mode" in line:
                info["power_mode"] = line.split(":", 1)[-1].strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return info


def gpu_info() -> dict[str, str] | None:
    """GPU name and compute capability, asked of torch only if the caller already imported it."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    index = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return {"name": torch.cuda.get_device_name(index), "compute_capability": f"{major}.{minor}"}


def device(gpu: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Where the artifact was made: host CPU, GPU (given by the backend or found through torch), Jetson."""
    return {
        "hostname": platform.node(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "gpu": dict(gpu) if gpu else gpu_info(),
        "jetson": jetson_info(),
    }


def input_record(path: Path, root: Path | None = None) -> dict[str, Any]:
    """An input file: its path (relative to root), sha256 and its own manifest when it has one."""
    path = Path(path)
    record: dict[str, Any] = {"path": _rel(path, root), "sha256": sha256_file(path)}
    if manifest_path(path).is_file():
        record["manifest"] = _rel(manifest_path(path), root)
    return record


def _rel(path: Path, root: Path | None) -> str:
    path = Path(path).resolve()
    if root is not None:
        try:
            return path.relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


def write_manifest(artifact: Path, kind: str, *, inputs: Mapping[str, Any] | None = None,
                   settings: Mapping[str, Any] | None = None, metrics: Mapping[str, Any] | None = None,
                   gpu: Mapping[str, str] | None = None, root: Path | None = None) -> Path:
    """Write `artifact`'s manifest beside it and return its path.

    `inputs` maps a name to a file Path (hashed, linked to its manifest), an input record dict, or a sha256
    string (e.g. the data set or the code of conversion/).
    """
    artifact = Path(artifact)
    if not artifact.is_file():
        raise ManifestError(f"{artifact}: no such artifact to describe")
    records: dict[str, Any] = {}
    for name, value in (inputs or {}).items():
        if isinstance(value, Path):
            records[name] = input_record(value, root)
        elif isinstance(value, str):
            records[name] = {"sha256": value}
        else:
            records[name] = dict(value)
    doc = {
        "format": FORMAT,
        "artifact": artifact.name,
        "kind": kind,
        "sha256": sha256_file(artifact),
        "size": artifact.stat().st_size,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git": git_commit(root),
        "inputs": records,
        "versions": versions(),
        "device": device(gpu),
        "settings": dict(settings or {}),
        "metrics": dict(metrics or {}),
    }
    out = manifest_path(artifact)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, out)
    return out


def read_manifest(artifact: Path) -> dict[str, Any]:
    """The manifest of `artifact` (or the manifest file itself); ManifestError naming the file if unusable."""
    path = Path(artifact)
    if not path.name.endswith(SUFFIX):
        path = manifest_path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest (every artifact should have one beside it)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: unreadable manifest ({exc})") from None
    return check_manifest(doc, path)


def verify(artifact: Path) -> bool:
    """Whether the artifact's bytes still match the sha256 its manifest recorded."""
    doc = read_manifest(artifact)
    return Path(artifact).is_file() and sha256_file(Path(artifact)) == doc["sha256"]
