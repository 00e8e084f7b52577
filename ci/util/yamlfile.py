"""Reading YAML files so that a malformed one is one line naming the file and the line: rigs, hilci.yaml,
pod templates. Standard library and PyYAML only (a Jetson reads rigs with it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hilci.errors import YamlFileError


def load_yaml(path: Path, *, all_documents: bool = False) -> Any:
    """The file's one document (or list of documents)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise YamlFileError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise YamlFileError(f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); "
                            "is it a binary file?") from None
    try:
        return list(yaml.safe_load_all(text)) if all_documents else yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark else ""
        raise YamlFileError(f"{path}:{line} malformed YAML ({getattr(exc, 'problem', None) or exc})") from None
