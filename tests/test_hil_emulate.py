"""`hilci emulate RIG`: other software (here pymavlink's own `mavutil`) talks to the emulated robot, faults are
controlled from stdin, and Ctrl-C stops every emulator."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.scratch import child_env

pytestmark = [pytest.mark.emulator]  # what it needs: the fast tier leaves it out

ROOT = Path(__file__).resolve().parents[1]


class Lines:
    """The child's stdout, line by line, read by a thread so that waiting for a line has a timeout."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.queue.put(line) for line in proc.stdout], daemon=True).start()

    def until(self, pattern: str, timeout_s: float = 30.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} within {timeout_s} s; got:\n{''.join(self.seen)}")


def test_emulate_serves_mavutil_takes_fault_commands_and_stops_on_ctrl_c(tmp_path: Path):
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump({"name": "desk", "emulate": True, "devices": {
        "imu": {"driver": "imu", "baud": 921600, "rate_hz": 200}}}))
    proc = subprocess.Popen([sys.executable, "-m", "hilci", "emulate", str(rig)], cwd=ROOT, env=child_env(PYTHONUNBUFFERED="1"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = Lines(proc)
    try:
        line = lines.until(r"^\s+imu\s+imu\s+port ")
        port = line.split("port", 1)[1].split()[0]
        lines.until(r"^faults: ")

        os.environ["MAVLINK20"] = "1"
        from pymavlink import mavutil

        conn = mavutil.mavlink_connection(port, baud=921600)
        try:
            for _ in range(50):  # a quarter second of the 200 Hz stream
                msg = conn.recv_match(type="HIGHRES_IMU", blocking=True, timeout=5)
                assert msg is not None, "mavutil received no HIGHRES_IMU from the emulator"
                assert abs((msg.xacc ** 2 + msg.yacc ** 2 + msg.zacc ** 2) ** 0.5 - 9.81) < 1.0
        finally:
            conn.close()

        proc.stdin.write("imu stats\n")
        proc.stdin.flush()
        stats = json.loads(lines.until(r"^\{"))  # the emulator's own record of what it sent
        assert stats["sent"] >= 50 and stats["rate_hz"] > 0, stats
        proc.stdin.write("gps stall\n")
        proc.stdin.flush()
        assert "DEVICE one of imu" in lines.until(r"^\? ")

        proc.send_signal(signal.SIGINT)
        lines.until(r"^emulators stopped")
        assert proc.wait(timeout=15) == 0
        assert not Path(port).exists(), f"{port} still exists after Ctrl-C"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
