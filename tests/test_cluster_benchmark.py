"""benchmarks/cluster.py --quick runs on the real pieces and prints every figure it promises (never a time)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.scratch import child_env

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_mode_prints_its_lines():
    proc = subprocess.run([sys.executable, "benchmarks/cluster.py", "--quick"], cwd=ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("bench: ")]
    assert any("silent -> Unhealthy" in ln for ln in lines) and any("recovered -> Healthy" in ln for ln in lines)
    assert sum("busy" in ln and "double allocations 0" in ln for ln in lines) == 2, proc.stdout
    assert any("mean wait" in ln and "0 errors" in ln for ln in lines), proc.stdout
