"""A file's digest by what it means to a stage that runs it, not by its bytes: a comment changes nothing.

Python: the source without its comments and blank lines (docstrings stay: `--help` texts and `__doc__` are
read at run time). YAML: the parsed documents. Anything else, or a file that does not parse: its bytes. The
result must not depend on the interpreter computing it (the plan pod's Python keys a Jetson's stage), so Python
is never hashed as tokens, whose kinds change between releases: tokenize only finds the comments to cut.
"""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

import yaml

from hilci.util.digest import sha256_bytes, sha256_file, sha256_json


def python_without_comments(source: bytes) -> bytes | None:
    """The source with every comment and blank line removed and trailing spaces cut; None if it does not tokenize."""
    try:
        tokens = list(tokenize.tokenize(io.BytesIO(source).readline))
    except (tokenize.TokenError, SyntaxError, UnicodeDecodeError):
        return None
    encoding = next((t.string for t in tokens if t.type == tokenize.ENCODING), "utf-8")
    try:
        lines = source.decode(encoding).splitlines()
    except (UnicodeDecodeError, LookupError):
        return None
    for tok in reversed([t for t in tokens if t.type == tokenize.COMMENT]):
        (row, col), (_, end) = tok.start, tok.end
        line = lines[row - 1]
        lines[row - 1] = line[:col] + line[end:]
    kept = [line.rstrip() for line in lines if line.strip()]
    return "\n".join(kept).encode("utf-8")


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SEEN: dict[tuple[str, str], str] = {}  # (kind, sha256 of the bytes) -> digest: tokenizing is the slow part


def meaning_digest(path: Path) -> str:
    """sha256 of what `path` means (module docstring); its bytes' sha256 when it has no parsed form here."""
    suffix = path.suffix.lower()
    kind = "py" if suffix == ".py" else "yaml" if suffix in (".yaml", ".yml") else ""
    if not kind:
        return sha256_file(path)
    data = path.read_bytes()
    raw = sha256_bytes(data)
    known = _SEEN.get((kind, raw))
    if known is not None:
        return known
    digest = raw
    if kind == "py":
        stripped = python_without_comments(data)
        if stripped is not None:
            digest = "py:" + sha256_bytes(stripped)
    else:
        try:
            digest = "yaml:" + sha256_json(list(yaml.load_all(data, Loader=_LOADER)))
        except yaml.YAMLError:
            pass
    if len(_SEEN) > 20000:
        _SEEN.clear()
    _SEEN[(kind, raw)] = digest
    return digest
