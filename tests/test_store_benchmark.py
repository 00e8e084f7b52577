"""`benchmarks/commits.py --quick` runs and prints its lines (never a time is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.scratch import child_env

REPO = Path(__file__).resolve().parents[1]


def test_the_commit_stream_benchmark_runs_in_quick_mode():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "commits.py"), "--quick"], cwd=REPO,
                          env=child_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "bench: commit stream: 4 commits on two agents sharing one store" in out
    assert "seconds with the store" in out and "without" in out
    assert "bench: stage gen      : hit rate 2/4" in out  # the model touched twice: two misses, two hits
    assert "bench: bytes uploaded per commit" in out
    assert "flagged on the first regressed run: yes; false alarms 0/8" in out
