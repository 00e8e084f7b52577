"""What the runner shows while it works: a live line on a terminal, plain lines in CI, and the summary table."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ci.model import Stage, StageOutcome

MARKS = {"passed": "ok", "cached": "cached", "failed": "FAILED", "error": "ERROR", "skipped": "skipped"}


class Progress:
    """Plain lines: one when a stage starts, one when it ends (CI logs, pipes, Jenkins consoles)."""

    tick_s = 0.5

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    @staticmethod
    def for_stream(stream: TextIO) -> Progress:
        live = stream.isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"
        return LiveProgress(stream) if live else Progress(stream)

    def write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def started(self, stage: Stage) -> None:
        self.write(f"[{stage.name}] started: {stage.does}\n")

    def tick(self, stage: Stage, elapsed_s: float) -> None:
        pass

    def finished(self, outcome: StageOutcome) -> None:
        why = f" — {outcome.reason}" if outcome.reason else ""
        self.write(f"[{outcome.name}] {MARKS.get(outcome.status, outcome.status)} "
                   f"in {outcome.duration_s:.1f} s{why}\n")

    def summary(self, outcomes: list[StageOutcome], notes: list[str]) -> None:
        self.write(summary_table(outcomes, notes))


class LiveProgress(Progress):
    """One line per stage that updates in place (elapsed time, spinner) until the stage ends."""

    tick_s = 0.2
    SPIN = "|/-\\"

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._n = 0

    def started(self, stage: Stage) -> None:
        self.write(f"\r\033[K  {stage.name:<10} running   0.0 s  {stage.does}")

    def tick(self, stage: Stage, elapsed_s: float) -> None:
        self._n += 1
        spin = self.SPIN[self._n % len(self.SPIN)]
        self.write(f"\r\033[K{spin} {stage.name:<10} running {elapsed_s:5.1f} s  {stage.does}")

    def finished(self, outcome: StageOutcome) -> None:
        color = {"passed": 32, "cached": 36, "skipped": 33}.get(outcome.status, 31)
        mark = MARKS.get(outcome.status, outcome.status)
        why = f"  {outcome.reason}" if outcome.reason else ""
        self.write(f"\r\033[K  {outcome.name:<10} \033[{color}m{mark:<8}\033[0m {outcome.duration_s:5.1f} s{why}\n")


def summary_table(outcomes: list[StageOutcome], notes: list[str]) -> str:
    """The table printed at the end of `hilci run`."""
    rows = [("stage", "status", "time", "detail")]
    for o in outcomes:
        rows.append((o.name, MARKS.get(o.status, o.status), f"{o.duration_s:.1f} s", o.reason[:100]))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [""] + ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    lines.insert(2, "  ".join("-" * w for w in widths) + "  " + "-" * 6)
    lines += [f"note: {n}" for n in notes]
    total = sum(o.duration_s for o in outcomes)
    passed = sum(o.ok for o in outcomes)
    lines.append(f"{passed}/{len(outcomes)} stages passed in {total:.1f} s; reports/index.html, reports/junit.xml")
    return "\n".join(lines) + "\n"


