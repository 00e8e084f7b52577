"""A stage's cache key, computable on any pod: the same key on a CPU pod without torch as on the GPU pod.

The key covers the stage's definition, its hilci.yaml section, the board (matrix stages), the rig (only for a
stage that runs on it, keyed by its parsed content), every declared input file, the env variables it reads,
and the place it runs (hilci.store.place): a pod's template, image, Python, architecture, accelerator and the
lock's exact tool versions, known without starting the pod; or, for a local run, what is installed here.
Input files are keyed by what they mean (hilci.util.meaning: a comment changes nothing), unless the stage reads
their text (`exact_inputs`: a linter, tests that read files): then by their bytes.
Inputs that are another stage's outputs (a checkpoint, an ONNX file) are keyed by that stage's key, so a plan
needs no artifacts: a stage reruns when anything upstream would.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

from hilci.errors import UsageError, YamlFileError
from hilci.pipeline.model import Pipeline, Stage
from hilci.store.place import POD, default_place, local_place, lock_pins, normalize, pod_place
from hilci.util.digest import sha256_file, sha256_json
from hilci.util.meaning import meaning_digest
from hilci.util.yamlfile import load_yaml

KEY_FORMAT = 3


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


def pinned_versions(root: Path, tools: tuple[str, ...]) -> dict[str, str]:
    """Each tool's exact version in the lock (constraints.txt, markers not evaluated), else "unlocked"."""
    pins = lock_pins(root, None)
    return {tool: pins.get(normalize(tool), "unlocked") for tool in tools}


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
              board: str = "local", _memo: dict | None = None, place: str | None = None) -> tuple[str, dict]:
    """The cache key of a stage and the parts it was computed from (kept in the entry, for `hilci plan`'s why).
    `place`: `pod` (keyed from its pod template and image) or `local` (as installed); None: guessed here."""
    memo = {} if _memo is None else _memo
    place = place or default_place()
    memo_key = (stage.name, board, place)
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
                                                                        **section}, rig, up_board, memo,
                                                                        place)[0]
    digest = sha256_file if stage.exact_inputs else meaning_digest
    inputs = {str(p.relative_to(root)): digest(p) for p in expand(root, tuple(own), f"stage {stage.name!r}")}
    templates = [root / t for t in pipeline.pod_templates(stage)]
    if stage.matrix:
        templates = [t for t in templates if t.name == f"jetson-{board}.yaml"]
    if place == POD:
        where = pod_place(root, templates[0] if templates else None, stage.tools, stage.env)
    else:
        where = local_place(stage.tools, stage.env)
    reads_rig = stage.rerun_on_real_rig and rig is not None and rig.is_file()
    parts = {
        "format": KEY_FORMAT,
        "stage": {"name": stage.name, "entry": stage.entry, "outputs": list(stage.outputs)},
        "config": {k: v for k, v in config.items() if k != "__all__"},
        "rig": meaning_digest(rig) if reads_rig else None,  # only a stage that runs on the rig reads it
        "board": board if stage.matrix else None,
        "place": {k: v for k, v in where.items() if k not in ("tools", "env")},
        "inputs": inputs,
        "upstream": upstream,
        "tools": where["tools"],
        "env": where["env"],
    }
    result = (sha256_json(parts), parts)
    memo[memo_key] = result
    return result


def key_for(root: Path, pipeline: Pipeline, config: dict[str, Any], stage: Stage, rig: Path | None,
            board: str = "local", memo: dict | None = None, place: str | None = None) -> tuple[str, dict]:
    """`stage_key` from the whole hilci.yaml (upstream stages key with their own sections)."""
    return stage_key(root, pipeline, stage, {"__all__": config, **(config.get(stage.name) or {})}, rig, board,
                     memo, place)


def explain(old: dict, new: dict) -> list[str]:
    """What changed between two entries' key parts, one short line each ('' parts compare as absent)."""
    lines: list[str] = []
    if not isinstance(old, dict):
        return ["the cached entry has no readable key parts"]
    if old.get("format") != new.get("format"):
        return [f"key format {old.get('format')} -> {new.get('format')}"]
    for what in ("inputs", "upstream", "tools", "env", "place"):
        a, b = old.get(what) or {}, new.get(what) or {}
        if not isinstance(a, dict):
            a = {}
        label = {"inputs": "input", "upstream": "upstream stage", "tools": "tool", "env": "env",
                 "place": "place:"}[what]
        for name in sorted(set(a) | set(b)):
            if name not in a:
                lines.append(f"{label} {name} added")
            elif name not in b:
                lines.append(f"{label} {name} removed")
            elif a[name] != b[name]:
                if what in ("tools", "env", "place"):
                    lines.append(f"{label} {name} {a[name]!r} -> {b[name]!r}" if what != "tools"
                                 else f"tool {name} {a[name]} -> {b[name]}")
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
