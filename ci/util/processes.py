"""Ending a child process that may not listen: ask (SIGTERM), wait, then SIGKILL, each wait bounded."""

from __future__ import annotations

import subprocess


def terminate(proc: subprocess.Popen, timeout: float = 3.0) -> None:
    """SIGTERM, then SIGKILL if it has not ended within `timeout`; reaped either way (no zombie left)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
