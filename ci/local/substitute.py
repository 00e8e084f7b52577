"""The JUnit the runner writes for a stage that wrote none of its own: one that was skipped, one that timed out,
crashed or was aborted (an error testcase carrying the reason and its log's last lines), so every selected
stage has a file in reports/junit/ whatever happened."""

from __future__ import annotations

from pathlib import Path

from hilci.pipeline.model import Stage
from hilci.results import junit

LOG_TAIL_LINES = 40


def suite_name(stage: Stage) -> str:
    return f"hilci.{stage.name}"


def skipped_junit(junit_file: Path, stage: Stage, why: str) -> None:
    case = junit.make_case(stage.name, suite_name(stage), skipped=f"skipped: {why}")
    junit.write_suite(junit_file, suite_name(stage), [case], [("hilci.stage", stage.name)])


def error_junit(junit_file: Path, log_file: Path, stage: Stage, reason: str, duration: float) -> None:
    """One error testcase with `reason`, its details the last lines of the stage's log."""
    case = junit.make_case(stage.name, suite_name(stage), time=duration, error=reason,
                           details=f"last lines of {log_file.name}:\n{log_tail(log_file)}")
    junit.write_suite(junit_file, suite_name(stage), [case], [("hilci.stage", stage.name)])


def aborted_junit(junit_file: Path, log_file: Path, stage: Stage, reason: str, duration: float) -> str:
    """Keep the JUnit of a stage that recorded its own abort (its reason is then the one returned);
    otherwise write an error testcase with `reason`."""
    if junit_file.is_file():
        said = [c.message for c in junit.read_cases(junit_file) if "aborted" in c.message]
        if said:
            return said[0]
    error_junit(junit_file, log_file, stage, reason, duration)
    return reason


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
