"""A scratch copy of the repository as a fresh clone would have it (tracked and untracked-not-ignored files)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def scratch_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True, timeout=60).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment without the HILCI_* variables a surrounding `hilci run` set (the build stage
    runs these tests inside a pipeline) and without any store credentials (AWS_*: a test names its own store),
    plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HILCI_", "AWS_"))}
    env.update(extra)
    return env
