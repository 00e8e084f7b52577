"""Every benchmark script runs in its quick mode, so none can rot unseen (issue: benchmarks/hil.py crashed on
main after a refactor). Found by glob: a new benchmarks/*.py is covered without touching this file.

The test checks that the script exits 0 and prints its `bench:` lines; it never judges a time or a ratio
(those are the full runs' business, on a quiet machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py"))
# Scripts known broken on this branch and fixed on another (name -> why). strict: the test fails once a
# script works again, so the entry cannot outlive the fix.
BROKEN_HERE: dict[str, str] = {}


def test_every_benchmark_is_found():
    assert {"pipeline.py", "model.py", "hil.py"} <= {p.name for p in SCRIPTS}


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_quick_mode_runs_and_prints_its_lines(script, tmp_path, request):
    if script.name in BROKEN_HERE:
        request.applymarker(pytest.mark.xfail(reason=BROKEN_HERE[script.name], strict=True))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HILCI_")}
    proc = subprocess.run([sys.executable, str(script), "--quick"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("bench: ")]
    assert len(lines) >= 3, out[-4000:]
    assert all(": " in ln[len("bench: "):] for ln in lines)
    assert "Traceback" not in out
