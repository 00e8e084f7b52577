"""Where a run comes from: commit, branch, build, host, as Jenkins's environment or git says (bounded)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

GIT_TIMEOUT_S = 5


@dataclass(frozen=True)
class Provenance:
    commit: str
    branch: str
    build: str
    target: str  # the branch a change is compared against (CHANGE_TARGET in a Jenkins PR build, else its own)

    def as_dict(self) -> dict:
        return asdict(self)


def git(root: Path, *args: str) -> str:
    """`git ARGS` in `root`, stripped; "" when git is missing, fails or takes longer than GIT_TIMEOUT_S."""
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=GIT_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def provenance(root: Path) -> Provenance:
    """HILCI_COMMIT/HILCI_BRANCH, Jenkins's GIT_COMMIT/BRANCH_NAME/BUILD_NUMBER, else git; 'unknown' if none."""
    env = os.environ
    sha = commit(root) or "unknown"
    branch = (env.get("HILCI_BRANCH") or env.get("BRANCH_NAME") or env.get("GIT_BRANCH")
              or git(root, "rev-parse", "--abbrev-ref", "HEAD") or "unknown")
    if branch == "HEAD":
        branch = "detached"
    build = env.get("HILCI_BUILD") or (f"#{env['BUILD_NUMBER']}" if env.get("BUILD_NUMBER") else "local")
    target = env.get("HILCI_TARGET_BRANCH") or env.get("CHANGE_TARGET") or branch
    return Provenance(commit=sha, branch=branch, build=build, target=target)


def commit(root: Path) -> str:
    """The commit under test: HILCI_COMMIT, Jenkins's GIT_COMMIT, else git's HEAD in `root`; "" if none."""
    return os.environ.get("HILCI_COMMIT") or os.environ.get("GIT_COMMIT") or git(root, "rev-parse", "HEAD")


def environment_facts() -> dict[str, str]:
    """The facts that explain a timing: host, platform, Python, cores."""
    return {"host": socket.gethostname(), "platform": platform.platform(), "machine": platform.machine(),
            "python": platform.python_version(), "cpus": str(os.cpu_count() or 0)}
