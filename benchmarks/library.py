"""What adopting hilci costs at a command's start: `hilci init`, then each command finding the project, importing
the pipeline it names and loading the device kinds (entry points and `kinds:`), against the bare import floor.

Prints `bench:` lines; `--quick` takes fewer repetitions (tests/test_benchmarks.py runs it so it cannot rot).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.scratch import child_env  # noqa: E402

KIND = '''
from hilci.hil.kinds import StreamSettings
from hilci.hil.registry import SENSOR, DeviceKind, register

register(DeviceKind("thermo", SENSOR, StreamSettings, "x:Driver", "x:Emulator", "bench kind"))
'''
LOAD_KINDS = ("import time; from importlib import metadata; t = time.perf_counter(); "
              "metadata.entry_points(group='hilci.kinds'); scan = time.perf_counter() - t; "
              "from hilci.hil import discovery; n = len(discovery.load()); "
              "print(n, (time.perf_counter() - t) * 1000, scan * 1000)")


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    took = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed (exit {proc.returncode}): {proc.stderr[-1000:]}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 15")
    reps = 3 if parser.parse_args().quick else 15
    env = child_env()
    env.pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory(prefix="hilci-bench-library-") as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        init_ms = timed([sys.executable, "-m", "hilci", "init"], root, env)
        files = sum(len(f) for _, _, f in os.walk(root))
        print(f"bench: hilci init: {init_ms:.0f} ms, {files} files written")

        (root / "benchkind.py").write_text(KIND)
        (root / "hilci.yaml").write_text((root / "hilci.yaml").read_text().replace("kinds: []", "kinds: [benchkind]"))
        floor = [timed([sys.executable, "-m", "hilci", "--help"], root, env) for _ in range(reps)]
        stages = [timed([sys.executable, "-m", "hilci", "stages"], root, env) for _ in range(reps)]
        f, s = statistics.median(floor), statistics.median(stages)
        print(f"bench: hilci stages in a scaffolded project: median {s:.0f} ms over {reps} (`hilci --help` {f:.0f} ms; "
              f"finding the project and importing its pipeline add {s - f:.0f} ms)")

        loads, scans = [], []
        for _ in range(reps):
            out = subprocess.run([sys.executable, "-c", LOAD_KINDS], cwd=root, env=env, capture_output=True,
                                 text=True, timeout=120)
            if out.returncode != 0:
                sys.exit(f"bench: loading the kinds failed: {out.stderr[-1000:]}")
            count, ms, scan = out.stdout.split()
            loads.append(float(ms))
            scans.append(float(scan))
        print(f"bench: device kinds found: {count} (entry points and kinds:), loaded in median "
              f"{statistics.median(loads):.1f} ms over {reps}, of which the entry-point scan of every installed "
              f"distribution {statistics.median(scans):.1f} ms (pytest's own plugin loading makes the same scan)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
