"""A child process in its own process group: started, waited on within a timeout, told of an abort, stopped.

The local runner supervises `hilci stage NAME` with it and a stage supervises its tools (pytest, a trainer) with
it, so both stop a child the same way: the whole group (the tool's own children too) gets the first signal,
then SIGKILL after a grace, a group that is already gone or not ours to signal is not an error, and the child
is always waited on, so it never lingers as a zombie.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from signal import SIGKILL, SIGTERM
from typing import IO

KILL_GRACE_S = 5.0  # after a SIGTERM (a timeout, an abort not forwarded earlier), how long before SIGKILL
POLL_S = 0.1


class Child:
    """One started child process, the leader of its own process group."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    @classmethod
    def start(cls, cmd: list[str], *, cwd: Path, stdout: IO | int, env: dict[str, str] | None = None) -> Child:
        """Start `cmd` in a new session (its own process group), output to `stdout`, no stdin.
        A missing program raises FileNotFoundError, as `subprocess` does."""
        return cls(subprocess.Popen(cmd, cwd=cwd, env=env, stdout=stdout, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True))

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int) -> None:
        """Send `signum` to the child's whole group; a group already gone or not ours is left alone."""
        try:
            os.killpg(self.proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, first: int = SIGTERM, grace_s: float = KILL_GRACE_S) -> int:
        """Stop the whole group: `first`, then SIGKILL after `grace_s`; the child's exit code (-9 when even
        SIGKILL did not end it within KILL_GRACE_S)."""
        for signum, wait_s in ((first, grace_s), (SIGKILL, KILL_GRACE_S)):
            self.signal(signum)
            try:
                return self.proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        return -9

    def wait(self, timeout_s: float, *, aborted: Callable[[], int] = lambda: 0, abort_grace_s: float = 0.0,
             tick_s: float = POLL_S, on_tick: Callable[[float], None] | None = None) -> tuple[int, bool]:
        """Wait for the child to end within `timeout_s` (then stop it); its exit code and whether it timed out.

        `on_tick(elapsed_s)` runs every `tick_s` while it runs. Once `aborted()` returns a signal (which the
        caller has already forwarded to the group), the child gets `abort_grace_s` to tear down before SIGKILL,
        and the timeout no longer applies."""
        started = time.monotonic()
        abort_deadline = None
        while True:
            try:
                return self.proc.wait(timeout=tick_s), False
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if on_tick is not None:
                on_tick(now - started)
            if abort_deadline is None and aborted():
                abort_deadline = now + abort_grace_s
            if abort_deadline is not None:
                if now > abort_deadline:
                    return self.stop(SIGKILL), False
            elif now - started > timeout_s:
                return self.stop(SIGTERM), True
