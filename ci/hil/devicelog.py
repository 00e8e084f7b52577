"""Device logs per test, as pytest-embedded and labgrid keep them: what each device said during one test.

A driver writes its traffic here as it decodes it (NMEA sentences, MAVLink messages, Dynamixel packets in
hex, camera frame headers), each line with its time since the test began. The log is bounded (the last
MAX_LINES lines, each cut at MAX_LINE_CHARS), so a 1 kHz IMU cannot fill a disk or a JUnit file. When a test
fails, the plugin attaches every device's log to the testcase (`system-out`) and writes it to
`--hil-logs/<test>.log` (the hil stage: artifacts/hil/hil-logs/), which the testcase names in its `hil.log`
property for the report to link.
"""

from __future__ import annotations

import re
import time
from collections import deque
from pathlib import Path

from hilci.results.junit import DEVICE_LOG_PROPERTY

MAX_LINES = 400  # per device and test: the end of the traffic is where a failure shows
MAX_LINE_CHARS = 160
LOG_PROPERTY = DEVICE_LOG_PROPERTY


class TrafficLog:
    """The bounded, timestamped traffic of one device during one test."""

    def __init__(self, label: str, max_lines: int = MAX_LINES):
        self.label = label
        self.lines: deque[tuple[int, str, str]] = deque(maxlen=max_lines)
        self.total = 0
        self.start_ns = time.perf_counter_ns()

    def restart(self) -> None:
        """A new test begins: forget the previous test's traffic."""
        self.lines.clear()
        self.total = 0
        self.start_ns = time.perf_counter_ns()

    def add(self, direction: str, text: str, t_ns: int | None = None) -> None:
        """One line of traffic: `direction` is "rx" (from the device), "tx" (to it) or "!!" (a problem)."""
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS - 1] + "…"
        self.lines.append((t_ns or time.perf_counter_ns(), direction, text))
        self.total += 1

    def text(self) -> str:
        head = f"== {self.label}: {self.total} lines"
        if self.total > len(self.lines):
            head += f", the last {len(self.lines)} kept"
        body = [f"{(t - self.start_ns) / 1e9:10.6f} {d} {line}" for t, d, line in self.lines]
        return "\n".join([head, *body])


def hexdump(data: bytes) -> str:
    return data.hex(" ")


def render(logs: list[TrafficLog]) -> str:
    """Every device's traffic of one test, device after device."""
    return "\n\n".join(log.text() for log in logs) + "\n"


def log_path(folder: Path, nodeid: str) -> Path:
    """reports/hil-logs/<test>.log, the test id made a safe file name."""
    path, _, rest = nodeid.partition("::")
    name = ".".join(filter(None, [Path(path).stem, rest.replace("::", ".")]))
    return folder / (re.sub(r"[^A-Za-z0-9_.\-\[\]]+", "_", name) + ".log")
