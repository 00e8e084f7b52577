"""The pipeline in pods against `hilci run` on the same machine (issue "The pods, for real"; goal: ratio <= 1.5).

Both run cold from their own copy of this checkout (its working tree's changes included): `hilci run` with an
empty local cache, `hilci pods --boards <first board>` (each stage in its pod template's container, with a
SeaweedFS store started empty for the run) over the images `make images` built. The lines give each run's wall
time, the ratio pods/run, and each stage's seconds side by side (a pod's include its start and the Jenkinsfile's
install step).

Run from the repository root: `.venv/bin/python benchmarks/pods.py [--quick]`. `benchmarks/cluster.py --pods` runs
it too, after benchmarks/images.py, as the cluster benchmarks' section 3. --quick measures one stage
(`--only train`) both ways, with no store in the pods: it proves the script runs, in a minute or two. Without
podman or the images it prints why and what to run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hilci.example import PIPELINE  # noqa: E402
from hilci.jenkins import pods  # noqa: E402


def timed(cmd: list[str], cwd: Path, timeout: float, **extra: str) -> tuple[float, int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HILCI_", "AWS_"))}
    env.update(CI="true", **extra)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - t0, proc.returncode, proc.stdout + proc.stderr


def own_hilci(copy: Path) -> str:
    """A PYTHONPATH entry that makes `import hilci` the copy's own ci/ (a link named hilci), ahead of the venv's
    editable install of this checkout: the copy's tests then see their own files (as in a pod, whose first step
    reinstalls hilci from its workspace); `hilci jenkinsfile --check` in the copy fails otherwise, since the
    rendering names the definition's file relative to the checkout it was imported from."""
    folder = copy.parent / f"{copy.name}-pythonpath"
    folder.mkdir()
    (folder / "hilci").symlink_to(copy / "ci", target_is_directory=True)
    return str(folder)


def local_stages(root: Path) -> dict[str, float]:
    data = json.loads((root / "reports" / "run.json").read_text())
    return {s["name"]: float(s.get("duration_s") or 0.0) for s in data["stages"]}


def pod_stages(root: Path) -> dict[str, float]:
    data = json.loads((root / "reports" / "pods" / "pods.json").read_text())
    return {s["id"]: float(s["seconds"]) for s in data["stages"] if s["status"] not in ("skipped",)}


def missing_prerequisite() -> str | None:
    if not shutil.which("podman"):
        return "podman is missing (make container-tools)"
    engine = pods.Podman(ROOT)
    for template in sorted({f"podtemplates/{s.pod}.yaml" for s in PIPELINE.stages if not s.matrix}
                           | {f"podtemplates/jetson-{PIPELINE.boards[0].name}.yaml"}):
        image = pods.template_image(ROOT, template)
        if not engine.image_exists(image):
            return f"image {image} ({template}) is not built (make images)"
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="one stage (train) both ways, no store")
    args = parser.parse_args()
    why = missing_prerequisite()
    if why:
        for label in ("hilci run", "hilci pods", "pods/run ratio"):
            print(f"bench: pods: {label}: not measured: {why}")
        return 0
    board = PIPELINE.boards[0].name
    only = ["--only", "train"] if args.quick else []
    with tempfile.TemporaryDirectory(prefix="hilci-pods-bench-") as tmp:
        local = pods.checkout_copy(ROOT, Path(tmp) / "local")
        in_pods = pods.checkout_copy(ROOT, Path(tmp) / "pods")
        extra = ["--store-secret", "missing"] if args.quick else []
        pods_s, pods_rc, pods_out = timed([sys.executable, "-m", "hilci", "pods", "--boards", board, *only, *extra],
                                          in_pods, 3600)
        if pods_rc != 0:
            print(pods_out[-3000:], file=sys.stderr)
            raise SystemExit(f"bench: pods: hilci pods failed (exit {pods_rc})")
        run_s, run_rc, run_out = timed([sys.executable, "-m", "hilci", "run", *only], local, 3600,
                                       PYTHONPATH=own_hilci(local))
        if run_rc != 0:
            print(run_out[-3000:], file=sys.stderr)
            raise SystemExit(f"bench: pods: hilci run failed (exit {run_rc})")
        here, there = local_stages(local), pod_stages(in_pods)
    what = "train only" if args.quick else f"the whole pipeline, board {board}"
    print(f"bench: pods: hilci run ({what}, cold): {run_s:.0f} s")
    print(f"bench: pods: hilci pods ({what}, cold, every stage in its pod): {pods_s:.0f} s")
    print(f"bench: pods: pods/run ratio: {pods_s / run_s:.2f} (goal <= 1.5)")
    for stage in PIPELINE.stages:
        key = pods.key(stage, board if stage.matrix else None)
        if stage.name in here or key in there:
            local_s = f"{here[stage.name]:.0f} s" if stage.name in here else "-"
            pod_s = f"{there[key]:.0f} s" if key in there else "-"
            print(f"bench: pods: stage {stage.name}: run {local_s}, pod {pod_s}")
    if "plan" in there:
        print(f"bench: pods: plan pod (no hilci run counterpart): {there['plan']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
