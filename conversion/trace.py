"""Lineage of an artifact: follow manifests from an engine back through the ONNX and checkpoint to commit and data.

Each node is checked as it is read: the artifact's bytes against its manifest's sha256, and each input's
recorded sha256 against the file that is there now, so a swapped or edited file shows as CHANGED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hilci.conversion import manifest

OK, CHANGED, MISSING = "ok", "CHANGED", "missing"


@dataclass
class Node:
    """One artifact or recorded input in the lineage tree."""

    name: str                 # the input's role ("onnx", "checkpoint", "data") or the artifact's own name
    path: str | None
    sha256: str | None
    status: str               # ok | CHANGED | missing | "" (a recorded value such as data or code)
    doc: dict[str, Any] | None = None      # the manifest, when this node has one
    record: dict[str, Any] | None = None   # how the parent recorded it
    children: list[Node] = field(default_factory=list)


def _locate(rel: str, root: Path, near: Path) -> Path | None:
    """A recorded path, resolved against the root, else against the folders above the artifact."""
    candidate = Path(rel)
    if candidate.is_absolute():
        return candidate if candidate.exists() else None
    for base in (root, *near.resolve().parents):
        if (base / rel).exists():
            return base / rel
    return None


def lineage(artifact: Path, root: Path | None = None, name: str | None = None, _seen: set | None = None) -> Node:
    """The lineage tree of `artifact` (ManifestError if the artifact has no readable manifest)."""
    artifact = Path(artifact)
    root = Path(root or Path.cwd())
    seen = _seen if _seen is not None else set()
    doc = manifest.read_manifest(artifact)
    status = MISSING if not artifact.is_file() else (
        OK if manifest.sha256_file(artifact) == doc["sha256"] else CHANGED)
    node = Node(name or artifact.name, str(artifact), doc["sha256"], status, doc=doc)
    seen.add(artifact.resolve())
    for role, record in sorted(doc.get("inputs", {}).items()):
        path = _locate(record["path"], root, artifact) if record.get("path") else None
        if path is not None and path.is_file():
            current = manifest.sha256_file(path)
            child_status = OK if current == record.get("sha256") else CHANGED
            has_manifest = manifest.manifest_path(path).is_file()
            if has_manifest and path.resolve() not in seen:
                child = lineage(path, root, role, seen)
                child.status = child_status if child_status == CHANGED else child.status
                child.record, child.path = record, record["path"]
            else:
                child = Node(role, record.get("path"), record.get("sha256"), child_status, record=record)
        elif record.get("path") and not record["path"].endswith("/") and "#" not in record["path"]:
            child = Node(role, record["path"], record.get("sha256"), MISSING, record=record)
        else:
            child = Node(role, record.get("path") or record.get("source"), record.get("sha256"), "", record=record)
        node.children.append(child)
    return node


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def render(node: Node) -> str:
    """The tree as text: each artifact with status, kind, commit, device and versions; inputs below it."""
    lines: list[str] = []

    def walk(n: Node, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└─ " if last else "├─ ")
        status = f" [{n.status}]" if n.status else ""
        label = n.path or "-"
        if n.record and n.record.get("source"):
            label = n.record["source"]
        kind = f" {n.doc['kind']}" if n.doc else ""
        lines.append(f"{prefix}{branch}{n.name}:{kind} {label} sha256 {_short(n.sha256)}{status}")
        inner = prefix + ("" if top else ("   " if last else "│  "))
        if n.doc:
            git = n.doc.get("git", {})
            dirty = " (dirty tree)" if git.get("dirty") else ""
            dev = n.doc.get("device", {})
            gpu = dev.get("gpu") or {}
            where = dev.get("cpu", "?") + (f", GPU {gpu.get('name')} sm {gpu.get('compute_capability')}" if gpu else "")
            if dev.get("jetson"):
                where += f", {dev['jetson'].get('model')} power mode {dev['jetson'].get('power_mode')}"
            versions = ", ".join(f"{k} {v}" for k, v in sorted(n.doc.get("versions", {}).items()))
            lines.append(f"{inner}   commit {git.get('commit', manifest.UNKNOWN)}{dirty}, made {n.doc.get('created')}")
            lines.append(f"{inner}   on {where}")
            lines.append(f"{inner}   versions: {versions}")
        elif n.record and "values" in n.record:
            values = ", ".join(f"{k}={v}" for k, v in sorted(n.record["values"].items()))
            lines.append(f"{inner}   {values}")
        elif n.record and n.record.get("source"):
            extra = ", ".join(f"{k}={v}" for k, v in sorted(n.record.items()) if k not in ("source", "sha256"))
            lines.append(f"{inner}   {extra}")
        for i, child in enumerate(n.children):
            walk(child, inner, i == len(n.children) - 1, False)

    walk(node, "", True, True)
    return "\n".join(lines)


def problems(node: Node) -> list[str]:
    """Every node whose bytes no longer match what was recorded, or that is missing."""
    found = [f"{node.path}: {node.status}"] if node.status in (CHANGED, MISSING) else []
    for child in node.children:
        found.extend(problems(child))
    return found


def as_dict(node: Node) -> dict[str, Any]:
    return {"name": node.name, "path": node.path, "sha256": node.sha256, "status": node.status,
            "kind": node.doc.get("kind") if node.doc else None,
            "commit": node.doc.get("git", {}).get("commit") if node.doc else None,
            "record": node.record, "inputs": [as_dict(c) for c in node.children]}
