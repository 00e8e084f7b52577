"""Trusted writers: only protected branches write what protected branches read.

A build of a trusted branch (hilci.yaml `trusted_branches`, default `main`, `master`, `release/*`) reads and
writes the shared layout (`entries/`, `blobs/`, `engines/`, `history/`). Any other build (a pull request, a
feature branch) reads the shared layout too, but writes only under its own namespace,
`branches/<sanitised branch>/`, which trusted builds never read. So a branch cannot put bytes under a key that
main restores, and a regression dropped on main is not restored from a branch that happened to pass. The branch
name comes from the environment, which a PR build controls: the S3 bucket policy in docs/store.md makes the
split hold against a hostile build (PR builds get keys that can write `branches/*` only).
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hilci.pipeline.sections import DEFAULT_TRUSTED

if TYPE_CHECKING:
    from hilci.pipeline.config import Config

NAMESPACES = "branches"


def is_trusted(branch: str, patterns: tuple[str, ...]) -> bool:
    """Whether `branch` matches one of the trusted patterns (shell globs: `release/*`)."""
    return any(fnmatch.fnmatchcase(branch, p) for p in patterns)


def sanitise(branch: str) -> str:
    """A branch name as one safe path segment: readable, and unique by a digest of the exact name
    (`feature/x` and `feature-x` do not share a namespace)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", branch).strip(".-")[:60] or "branch"
    return f"{slug}-{hashlib.sha256(branch.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def namespace(branch: str) -> str:
    """The prefix an untrusted branch writes under, ending in '/'."""
    return f"{NAMESPACES}/{sanitise(branch)}/"


@dataclass(frozen=True)
class Trust:
    """One build's standing: where it writes and, in order, where it reads."""

    branch: str
    patterns: tuple[str, ...] = DEFAULT_TRUSTED

    @property
    def trusted(self) -> bool:
        return is_trusted(self.branch, self.patterns)

    @property
    def write_ns(self) -> str:
        return "" if self.trusted else namespace(self.branch)

    @property
    def read_ns(self) -> tuple[str, ...]:
        """Its own namespace first, then the shared layout (a trusted build: the shared layout only)."""
        return ("",) if self.trusted else (self.write_ns, "")

    def may_restore(self, record_branch: str, ns: str) -> bool:
        """An entry read from the shared layout must have been written by a trusted branch; one from a branch's
        own namespace by that branch."""
        if ns == "":
            return is_trusted(record_branch, self.patterns)
        return ns == self.write_ns and record_branch == self.branch

    def history_ns(self, branch: str) -> str:
        """Where `branch`'s history lies: shared for a trusted branch, else under that branch's namespace."""
        return "" if is_trusted(branch, self.patterns) else namespace(branch)


def trust_for(branch: str, config: Config | None) -> Trust:
    """The build's trust from hilci.yaml's `trusted_branches` (typed by hilci.pipeline.sections.StoreSettings)."""
    patterns = config.store_settings.trusted_branches if config is not None else DEFAULT_TRUSTED
    return Trust(branch, tuple(patterns))
