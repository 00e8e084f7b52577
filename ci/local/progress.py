"""What the runner shows while it works: a live line on a terminal, plain lines in CI, and the summary table.

Inside a stage, the live line shows how far it is (epoch 3/10, 12/40 tests) from the progress file the stage
writes (`hilci.stage.progress`). The summary's detail column uses the terminal's whole width and wraps rather
than cuts: a failing stage counts its failures and names the first causes, a passing one shows its headline
figures (tests, accuracy, p99 latency) read from its JUnit.
"""

from __future__ import annotations

import os
import shutil
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from hilci.report.facts import failure_detail, produced_duration, stage_detail, suite_properties
from hilci.results import junit
from hilci.stage.progress import StageProgress

if TYPE_CHECKING:
    from hilci.pipeline.model import Stage, StageOutcome

MARKS = {"passed": "ok", "cached": "cached", "failed": "FAILED", "error": "ERROR", "skipped": "skipped"}
PLAIN_PROGRESS_EVERY_S = 10.0  # CI logs: a progress line at most this often


class Progress:
    """Plain lines: one when a stage starts, one when it ends (CI logs, pipes, Jenkins consoles)."""

    tick_s = 0.5

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._said: tuple[str, StageProgress | None, float] = ("", None, 0.0)

    @staticmethod
    def for_stream(stream: TextIO) -> Progress:
        live = stream.isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"
        return LiveProgress(stream) if live else Progress(stream)

    def write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def started(self, stage: Stage) -> None:
        self.write(f"[{stage.name}] started: {stage.does}\n")

    def tick(self, stage: Stage, elapsed_s: float, inside: StageProgress | None = None) -> None:
        """A line when the stage's own progress changed, at most every PLAIN_PROGRESS_EVERY_S."""
        name, last, at = self._said
        now = time.monotonic()
        if inside is None or (name == stage.name and (inside == last or now - at < PLAIN_PROGRESS_EVERY_S)):
            return
        self._said = (stage.name, inside, now)
        self.write(f"[{stage.name}] {inside.text()} ({elapsed_s:.0f} s)\n")

    def finished(self, outcome: StageOutcome) -> None:
        why = f" — {outcome.reason}" if outcome.reason else ""
        self.write(f"[{outcome.name}] {MARKS.get(outcome.status, outcome.status)} "
                   f"in {outcome.duration_s:.1f} s{why}\n")

    def summary(self, outcomes: list[StageOutcome], notes: list[str], junit_dir: Path | None = None) -> None:
        self.write(summary_table(outcomes, notes, junit_dir))


class LiveProgress(Progress):
    """One line per stage that updates in place (spinner, elapsed time, progress inside the stage)."""

    tick_s = 0.2
    SPIN = "|/-\\"

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._n = 0

    def started(self, stage: Stage) -> None:
        self.write(f"\r\033[K  {stage.name:<10} running   0.0 s  {stage.does}")

    def tick(self, stage: Stage, elapsed_s: float, inside: StageProgress | None = None) -> None:
        self._n += 1
        spin = self.SPIN[self._n % len(self.SPIN)]
        what = f"{inside.text()} · {stage.does}" if inside is not None else stage.does
        line = f"{spin} {stage.name:<10} running {elapsed_s:5.1f} s  {what}"
        self.write(f"\r\033[K{line[:terminal_width() - 1]}")

    def finished(self, outcome: StageOutcome) -> None:
        color = {"passed": 32, "cached": 36, "skipped": 33}.get(outcome.status, 31)
        mark = MARKS.get(outcome.status, outcome.status)
        why = f"  {outcome.reason}" if outcome.reason else ""
        self.write(f"\r\033[K  {outcome.name:<10} \033[{color}m{mark:<8}\033[0m {outcome.duration_s:5.1f} s{why}\n")


def terminal_width() -> int:
    """The terminal's columns ($COLUMNS or the tty), 100 when there is neither."""
    return max(shutil.get_terminal_size((100, 24)).columns, 40)


def outcome_detail(outcome: StageOutcome, junit_dir: Path | None) -> str:
    """The detail column: counted, named failures or headline figures from the stage's JUnit; else the reason."""
    path = junit_dir / f"{outcome.name}.xml" if junit_dir is not None else None
    if outcome.status == "skipped" or path is None or not path.is_file():
        return outcome.reason
    try:
        cases = junit.read_cases(path)
    except ValueError:
        return outcome.reason
    if outcome.status in ("failed", "error") and not failure_detail(cases):
        return outcome.reason  # it broke outside its testcases: a timeout, no JUnit
    detail = stage_detail(cases) or outcome.reason
    if outcome.status == "cached":
        props = next(iter(suite_properties(path).values()), {})
        produced = produced_duration(props, cases)
        took = f", {produced:.1f} s when produced" if produced else ""
        detail = f"{detail} (cached{took}; {outcome.reason})"
    return detail


REGRESSION = "regression: "  # how the runner words a gated regression (one that fails the run)


def summary_table(outcomes: list[StageOutcome], notes: list[str], junit_dir: Path | None = None,
                  width: int | None = None) -> str:
    """The table printed at the end of `hilci run`; details wrap within `width` (the terminal's by default)."""
    width = width or terminal_width()
    rows = [("stage", "status", "time", "detail")]
    for o in outcomes:
        rows.append((o.name, MARKS.get(o.status, o.status), f"{o.duration_s:.1f} s", outcome_detail(o, junit_dir)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    indent = sum(widths) + 2 * 3
    room = max(width - indent, 30)
    lines = [""]
    for n, row in enumerate(rows):
        head = "  ".join(row[i].ljust(widths[i]) for i in range(3)) + "  "
        wrapped = textwrap.wrap(row[3], room, break_on_hyphens=False) or [""]
        lines.append(head + wrapped[0])
        lines += [" " * indent + more for more in wrapped[1:]]
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
    regressed = [n for n in notes if n.startswith(REGRESSION)]  # a gated regression fails the run: not a note
    lines += [n if n.startswith(REGRESSION) else f"note: {n}" for n in notes]
    total = sum(o.duration_s for o in outcomes)
    passed = sum(o.ok for o in outcomes)
    verdict = f"; FAILED: {len(regressed)} measurement(s) regressed" if regressed else ""
    lines.append(f"{passed}/{len(outcomes)} stages passed{verdict} in {total:.1f} s; reports/index.html, "
                 "reports/junit.xml")
    return "\n".join(lines) + "\n"
