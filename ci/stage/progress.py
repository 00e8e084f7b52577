"""Progress inside a running stage, for the runner's live line: a tiny JSON file the stage rewrites.

The protocol: `hilci run` names a file in `$HILCI_PROGRESS` (reports/progress/<stage>.json) for each stage
it starts; the stage (the training loop, the HIL pytest session) calls `report_progress(done, total, what)`,
which replaces that file with `{"done": 3, "total": 10, "what": "epoch"}` (optionally `"failed": N`); the
runner reads it on each tick. Outside `hilci run` (Jenkins, a plain pytest) the variable is unset and
nothing is written. Writing never fails a stage. Standard library only: a Jetson's pytest imports it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

PROGRESS_ENV = "HILCI_PROGRESS"


@dataclass(frozen=True)
class StageProgress:
    """How far a stage is: `done` of `total` units of `what` (epochs, tests), and how many failed so far."""

    done: int
    total: int
    what: str
    failed: int = 0

    def text(self) -> str:
        """'epoch 3/10', '12/40 tests, 2 failed'."""
        total = f"/{self.total}" if self.total else ""
        body = f"{self.what} {self.done}{total}" if self.what == "epoch" else f"{self.done}{total} {self.what}"
        return body + (f", {self.failed} failed" if self.failed else "")


def progress_file(root: Path, stage: str) -> Path:
    """Where the runner asks stage `stage` to write its progress."""
    return root / "reports" / "progress" / f"{stage}.json"


def report_progress(done: int, total: int, what: str, failed: int = 0, target: str | None = None) -> None:
    """Tell `hilci run` how far this stage is (a no-op outside it): into `target`, else `$HILCI_PROGRESS`."""
    target = target or os.environ.get(PROGRESS_ENV)
    if not target:
        return
    body = {"done": int(done), "total": int(total), "what": str(what)}
    if failed:
        body["failed"] = int(failed)
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(tmp).write_text(json.dumps(body))
        os.replace(tmp, target)  # a reader sees the old file or the new one, never half of one
    except OSError:
        pass


def read_progress(path: Path) -> StageProgress | None:
    """The last progress a stage wrote, or None (nothing yet, or unreadable)."""
    try:
        data = json.loads(path.read_text())
        return StageProgress(int(data["done"]), int(data.get("total") or 0), str(data.get("what", "")),
                             int(data.get("failed") or 0))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
