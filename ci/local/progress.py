"""What the runner shows while it works: a live line per running stage on a terminal, plain lines in CI, and
the summary table.

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

MARKS = {"passed": "ok", "cached": "cached", "failed": "FAILED", "error": "ERROR", "skipped": "skipped",
         "not_built": "NOT BUILT (infrastructure)"}
PLAIN_PROGRESS_EVERY_S = 10.0  # CI logs: a progress line at most this often


class Progress:
    """Plain lines: one when a stage starts, one when it ends (CI logs, pipes, Jenkins consoles). Several
    stages may run at once: every line names its stage."""

    tick_s = 0.5

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._said: dict[str, tuple[StageProgress | None, float]] = {}  # per stage: last progress said, when

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
        """A line when the stage's own progress changed, at most every PLAIN_PROGRESS_EVERY_S per stage."""
        last, at = self._said.get(stage.name, (None, -PLAIN_PROGRESS_EVERY_S))
        now = time.monotonic()
        if inside is None or inside == last or now - at < PLAIN_PROGRESS_EVERY_S:
            return
        self._said[stage.name] = (inside, now)
        self.write(f"[{stage.name}] {inside.text()} ({elapsed_s:.0f} s)\n")

    def finished(self, outcome: StageOutcome) -> None:
        why = f" — {outcome.reason}" if outcome.reason else ""
        self.write(f"[{outcome.name}] {MARKS.get(outcome.status, outcome.status)} "
                   f"in {outcome.duration_s:.1f} s{why}\n")

    def summary(self, outcomes: list[StageOutcome], notes: list[str], junit_dir: Path | None = None) -> None:
        self.write(summary_table(outcomes, notes, junit_dir))


class LiveProgress(Progress):
    """One line per running stage, updated in place (spinner, elapsed time, progress inside the stage), below
    the lines of the stages that ended; the block grows and shrinks as stages start and end."""

    tick_s = 0.2
    SPIN = "|/-\\"

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._n = 0
        self._lines: dict[str, str] = {}  # running stage -> its live line, in the order they started
        self._drawn = 0  # lines of the block now on the screen (the cursor is at the end of the last)

    def started(self, stage: Stage) -> None:
        self._lines[stage.name] = f"  {stage.name:<10} running   0.0 s  {stage.does}"
        self._write_block(self._erase())

    def tick(self, stage: Stage, elapsed_s: float, inside: StageProgress | None = None) -> None:
        self._n += 1
        spin = self.SPIN[self._n % len(self.SPIN)]
        what = f"{inside.text()} · {stage.does}" if inside is not None else stage.does
        self._lines[stage.name] = f"{spin} {stage.name:<10} running {elapsed_s:5.1f} s  {what}"
        self._write_block(self._erase())

    def finished(self, outcome: StageOutcome) -> None:
        self._lines.pop(outcome.name, None)
        color = {"passed": 32, "cached": 36, "skipped": 33, "not_built": 33}.get(outcome.status, 31)
        mark = MARKS.get(outcome.status, outcome.status)
        why = f"  {outcome.reason}" if outcome.reason else ""
        done = f"  {outcome.name:<10} \033[{color}m{mark:<8}\033[0m {outcome.duration_s:5.1f} s{why}\n"
        self._write_block(self._erase() + done)

    def summary(self, outcomes: list[StageOutcome], notes: list[str], junit_dir: Path | None = None) -> None:
        self.write(self._erase())
        self._drawn = 0
        super().summary(outcomes, notes, junit_dir)

    def _erase(self) -> str:
        """Back to the block's first line and clear to the end of the screen."""
        up = f"\033[{self._drawn - 1}A" if self._drawn > 1 else ""
        return f"\r{up}\033[J"

    def _write_block(self, before: str) -> None:
        width = terminal_width() - 1  # a line that wrapped would break the count of lines to go back up
        self._drawn = len(self._lines)
        self.write(before + "\n".join(line[:width] for line in self._lines.values()))


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
    if outcome.status == "not_built" and outcome.reason and not detail.startswith(outcome.reason.split(":")[0]):
        detail = f"{outcome.reason.split(': the rig')[0]}: the rig, not the code; {detail}"
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
    total = max((o.start_s + o.duration_s for o in outcomes), default=0.0)  # wall time: stages overlap
    passed = sum(o.ok for o in outcomes)
    verdict = f"; FAILED: {len(regressed)} measurement(s) regressed" if regressed else ""
    lines.append(f"{passed}/{len(outcomes)} stages passed{verdict} in {total:.1f} s; reports/index.html, "
                 "reports/junit.xml")
    return "\n".join(lines) + "\n"
