"""One mechanism for a child process group (`hilci.stage.child`), as the runner and a stage's tools use it:
a timeout stops the whole group (grandchildren too), an abort gets its grace then SIGKILL, a group that is
gone or not ours to signal is no error, and the child is reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hilci.stage import child as child_module
from hilci.stage.child import Child
from tests.conftest import alive

# a parent that starts a grandchild (its pid in a file), both sleeping; SIGTERM ignored when told to
FAMILY = """
import os, signal, subprocess, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(sys.argv[2], "w").write(str(kid.pid))
time.sleep(60)
"""


def start_family(tmp_path: Path, mode: str = "plain") -> tuple[Child, Path]:
    pid_file = tmp_path / "grandchild.pid"
    child = Child.start([sys.executable, "-c", FAMILY, mode, str(pid_file)], cwd=tmp_path, stdout=subprocess.DEVNULL)
    assert child.proc.pid == os.getpgid(child.proc.pid)  # the leader of its own group
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return child, pid_file


def test_a_timeout_stops_the_whole_group_and_reaps_the_child(tmp_path):
    child, pid_file = start_family(tmp_path)
    code, timed_out = child.wait(0.3)
    assert timed_out and code == -signal.SIGTERM
    assert not alive(child.proc.pid)  # reaped, not a zombie
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10  # the grandchild got the group's SIGTERM; init reaps it
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)


def test_an_abort_gets_its_grace_then_sigkill(tmp_path):
    child, _ = start_family(tmp_path, "stubborn")
    ticks: list[float] = []
    code, timed_out = child.wait(60, aborted=lambda: signal.SIGTERM, abort_grace_s=0.2, on_tick=ticks.append)
    assert (code, timed_out) == (-signal.SIGKILL, False)  # the abort, not the timeout, ended it
    assert ticks and not child.running


def test_a_group_gone_or_not_ours_is_no_error(tmp_path, monkeypatch):
    child = Child.start([sys.executable, "-c", "pass"], cwd=tmp_path, stdout=subprocess.DEVNULL)
    assert child.wait(30) == (0, False)
    child.signal(signal.SIGTERM)  # the group is gone: ProcessLookupError, ignored
    assert child.stop() == 0

    def refused(_pid, _sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(child_module.os, "killpg", refused)  # a reused id in someone else's group
    child.signal(signal.SIGTERM)
    assert child.stop() == 0
