"""A stage's cache key, computable on any pod: the same key on a CPU pod without torch as on the GPU pod.

The key covers the stage's definition, its hilci.yaml section, the rig and board (matrix stages), the pod
template that declares its image, every declared input file's content, and its tools' versions as the
repository pins them (constraints.txt, else the requirement in pyproject.toml), never as installed here.
Inputs that are another stage's outputs (a checkpoint, an ONNX file) are keyed by that stage's key, so a plan
needs no artifacts: a stage reruns when anything upstream would.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Any

from hilci.errors import UsageError, YamlFileError
from hilci.pipeline.model import Pipeline, Stage
from hilci.util.digest import sha256_file, sha256_json
from hilci.util.yamlfile import load_yaml

KEY_FORMAT = 2
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;#]*)")


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


def rig_is_emulated(rig: Path | None) -> bool:
    """Whether a rig YAML says `emulate: true`; anything unreadable counts as real (never cached)."""
    if rig is None:
        return False
    try:
        data = load_yaml(rig)
    except YamlFileError:
        return False
    return isinstance(data, dict) and data.get("emulate") is True


def cacheable_on(stage: Stage, rig: Path | None) -> bool:
    """Whether a stage may be cached here: a stage that must rerun on real hardware only on an emulated rig."""
    return stage.cacheable and (not stage.rerun_on_real_rig or rig_is_emulated(rig))


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_versions(root: Path, tools: tuple[str, ...]) -> dict[str, str]:
    """Each tool's version as the repository declares it: `==X` from constraints.txt, else pyproject's spec."""
    pins: dict[str, str] = {}
    constraints = root / "constraints.txt"
    if constraints.is_file():
        for line in constraints.read_text(errors="replace").splitlines():
            m = _REQ.match(line.split("#", 1)[0])
            if m and m.group(3).strip():
                pins[normalize(m.group(1))] = m.group(3).strip().replace(" ", "")
    declared: dict[str, set[str]] = {}
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        for text in re.findall(r'"([^"\n]+)"', pyproject.read_text(errors="replace")):
            m = _REQ.match(text)
            if m and m.group(3).strip() and re.match(r"^[<>=!~]", m.group(3).strip()):
                declared.setdefault(normalize(m.group(1)), set()).add(m.group(3).strip().replace(" ", ""))
    out = {}
    for tool in tools:
        name = normalize(tool)
        out[tool] = pins.get(name) or ",".join(sorted(declared.get(name, ()))) or "unpinned"
    return out


def _literal_prefix(pattern: str) -> str:
    parts = []
    for part in pattern.split("/"):
        if glob.has_magic(part):
            break
        parts.append(part)
    return "/".join(parts)


def upstream_of(pipeline: Pipeline, stage: Stage, pattern: str) -> Stage | None:
    """The earlier stage whose declared outputs hold the files `pattern` names, if any."""
    prefix = _literal_prefix(pattern).rstrip("/")
    for other in pipeline.stages:
        if other is stage:
            break
        for out in other.outputs:
            out = out.rstrip("/")
            if prefix == out or prefix.startswith(out + "/"):
                return other
    return None


def stage_key(root: Path, pipeline: Pipeline, stage: Stage, config: dict[str, Any], rig: Path | None,
              board: str = "local", _memo: dict | None = None) -> tuple[str, dict]:
    """The cache key of a stage and the parts it was computed from (kept in the entry, for `hilci plan`'s why)."""
    memo = {} if _memo is None else _memo
    memo_key = (stage.name, board)
    if memo_key in memo:
        return memo[memo_key]
    own, upstream = [], {}
    for pattern in stage.inputs:
        source = upstream_of(pipeline, stage, pattern)
        if source is None:
            own.append(pattern)
        elif source.name not in upstream:
            up_board = board if source.matrix else "local"
            section = (config.get("__all__") or {}).get(source.name) or {}
            upstream[source.name] = stage_key(root, pipeline, source, {"__all__": config.get("__all__"),
                                                                        **section}, rig, up_board, memo)[0]
    inputs = {str(p.relative_to(root)): sha256_file(p) for p in expand(root, tuple(own), f"stage {stage.name!r}")}
    templates = [root / t for t in pipeline.pod_templates(stage)]
    if stage.matrix:
        templates = [t for t in templates if t.name == f"jetson-{board}.yaml"]
    parts = {
        "format": KEY_FORMAT,
        "stage": {"name": stage.name, "entry": stage.entry, "outputs": list(stage.outputs)},
        "config": {k: v for k, v in config.items() if k != "__all__"},
        "rig": sha256_file(rig) if (stage.matrix and rig is not None and rig.is_file()) else None,
        "board": board if stage.matrix else None,
        "pod": {str(t.relative_to(root)): sha256_file(t) for t in templates if t.is_file()},
        "inputs": inputs,
        "upstream": upstream,
        "tools": pinned_versions(root, stage.tools),
    }
    result = (sha256_json(parts), parts)
    memo[memo_key] = result
    return result


def key_for(root: Path, pipeline: Pipeline, config: dict[str, Any], stage: Stage, rig: Path | None,
            board: str = "local", memo: dict | None = None) -> tuple[str, dict]:
    """`stage_key` from the whole hilci.yaml (upstream stages key with their own sections)."""
    return stage_key(root, pipeline, stage, {"__all__": config, **(config.get(stage.name) or {})}, rig, board,
                     memo)


def explain(old: dict, new: dict) -> list[str]:
    """What changed between two entries' key parts, one short line each ('' parts compare as absent)."""
    lines: list[str] = []
    if not isinstance(old, dict):
        return ["the cached entry has no readable key parts"]
    if old.get("format") != new.get("format"):
        return [f"key format {old.get('format')} -> {new.get('format')}"]
    for what in ("inputs", "upstream", "tools", "pod"):
        a, b = old.get(what) or {}, new.get(what) or {}
        if not isinstance(a, dict):
            a = {}
        label = {"inputs": "input", "upstream": "upstream stage", "tools": "tool", "pod": "pod template"}[what]
        for name in sorted(set(a) | set(b)):
            if name not in a:
                lines.append(f"{label} {name} added")
            elif name not in b:
                lines.append(f"{label} {name} removed")
            elif a[name] != b[name]:
                if what == "tools":
                    lines.append(f"tool {name} {a[name]} -> {b[name]}")
                elif what == "upstream":
                    lines.append(f"upstream stage {name} changed (it reruns)")
                else:
                    lines.append(f"{label} {name} changed")
    lines += [f"setting {path} {a!r} -> {b!r}" for path, a, b in _diff_values(old.get("config"), new.get("config"),
                                                                         new["stage"]["name"])]
    for what in ("rig", "board", "stage"):
        if old.get(what) != new.get(what):
            lines.append(f"{what} changed")
    return lines


def _diff_values(a: Any, b: Any, path: str) -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            out += _diff_values(a.get(key), b.get(key), f"{path}.{key}")
        return out
    return [] if a == b else [(path, a, b)]
