"""Pod image benchmarks (issue "The pods, for real"): the images as `make images` builds them here
(images/build.py: docker where its engine answers, else podman over stand-in bases).

1. Cold build of the cpu image: every layer of it and of its stand-in base rebuilt (--no-cache); the Debian base
   made by debootstrap is timed when it is made, and is otherwise reused.
2. Warm rebuild after a code-only change (one .py file under ci/ edited, in a copy of the checkout): only the
   layers from `COPY ci` on may rebuild; the line names how many steps came from the cache.
3. Image sizes.

Run from the repository root: `python3 benchmarks/images.py [--quick]`. `benchmarks/cluster.py --pods` runs
it too, with benchmarks/pods.py, as the cluster benchmarks' section 3. Prints `bench: images: ...` lines.
--quick reuses what is built and builds nothing else: no cold build; the rebuilds and sizes of the images
that exist (on a machine where none is built yet it prints that, in under a minute). Without a Docker engine it needs podman (make container-tools).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "images"))

import build as image_build  # noqa: E402  (images/build.py)

BENCH_TAG = "localhost/hilci-bench/cpu:code-change"


def build_context(dockerfile: Path = ROOT / "images" / "cpu" / "Dockerfile") -> tuple[str, ...]:
    """What the image's COPY steps read from the checkout (their sources), so the copy never lags the Dockerfile."""
    names: list[str] = []
    for line in dockerfile.read_text().splitlines():
        words = [w for w in line.split() if not w.startswith("--")]
        if words and words[0] == "COPY":
            names += [w for w in words[1:-1] if w not in names]
    return tuple(names)


CONTEXT = build_context()


def engine() -> str:
    return "docker" if image_build.docker_works() else "podman"


def run_build(name: str, context: Path, no_cache: bool, tag: str | None = None) -> tuple[float, str]:
    """One podman build of images/<name>/Dockerfile from `context`, as make images builds it (tagged `tag` if
    given); (seconds, its output)."""
    pip_args, volumes = image_build.pip_sources()
    cmd = image_build.podman_build_command(name, image_build.standin_tag(name), pip_args, volumes)
    cmd[-1] = str(context)
    if tag:
        cmd[cmd.index("-t") + 1] = tag
    if no_cache:
        cmd.insert(1, "--no-cache")
    t0 = time.monotonic()
    proc = subprocess.run(["podman", *cmd], env=image_build.podman_env(), capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise image_build.BuildError(f"podman build of {name} failed: {(proc.stdout + proc.stderr)[-2000:]}")
    return seconds, proc.stdout + proc.stderr


def steps(output: str) -> tuple[int, int, list[str]]:
    """(steps, steps from the cache, the instructions rebuilt) from a podman build's output; FROM, which is
    never a cached step, left out."""
    blocks = [b for b in re.split(r"^STEP \d+/\d+: ", output, flags=re.M)[1:] if not b.startswith("FROM ")]
    rebuilt = [" ".join(b.split()[:2] + (b.split()[2:3] if "--chown" in b.split()[1] else []))
               for b in blocks if "--> Using cache" not in b]
    return len(blocks), len(blocks) - len(rebuilt), rebuilt


def size_mb(tag: str, eng: str) -> float:
    env = image_build.podman_env() if eng == "podman" else None
    out = subprocess.run([eng, "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True, text=True,
                         env=env, check=True).stdout
    return int(out.strip()) / 1e6


def checkout_copy(folder: Path) -> Path:
    """The build context's files, copied (symlinks kept), so the code change never touches the checkout."""
    for name in CONTEXT:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, folder / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, folder / name)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="reuse built images: no cold build")
    args = parser.parse_args()
    eng = engine()
    if eng == "docker":
        t0 = time.monotonic()
        image_build.build(["cpu"], "docker")
        print(f"bench: images: cpu build (docker, with its cache): {time.monotonic() - t0:.0f} s")
        for name in image_build.NAMES:
            tag = image_build.image_tag(name)
            if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
                print(f"bench: images: size {name}: {size_mb(tag, eng):.0f} MB")
        return 0
    if not shutil.which("podman"):
        print("images: no Docker engine and no podman: run 'make container-tools'", file=sys.stderr)
        return 2
    if args.quick and not image_build.image_exists(image_build.BASE):
        print("bench: images: debian base: not made (quick mode reuses built images; make images makes it)")
    else:
        t0 = time.monotonic()
        made = image_build.ensure_base(log=lambda _: None)
        print(f"bench: images: debian base (debootstrap + import): {time.monotonic() - t0:.0f} s" if made else
              "bench: images: debian base: reused (made once, then cached)")
    cpu = image_build.image_tag("cpu")
    with tempfile.TemporaryDirectory(prefix="hilci-images-bench-") as tmp:
        context = checkout_copy(Path(tmp))
        if not args.quick:
            t0 = time.monotonic()
            image_build.podman("build", "--no-cache", "--network", "host", "-f",
                               str(image_build.IMAGES / "standins" / "cpu.Containerfile"), "-t",
                               image_build.standin_tag("cpu"), str(image_build.IMAGES / "standins"), capture=True)
            standin_s = time.monotonic() - t0
            seconds, out = run_build("cpu", ROOT, no_cache=True)
            print(f"bench: images: cpu cold build: {standin_s + seconds:.0f} s (stand-in base {standin_s:.0f} s, "
                  f"image {seconds:.0f} s; the debian base reused)")
        if image_build.image_exists(cpu):
            seconds, out = run_build("cpu", ROOT, no_cache=False)
            total, cached, _ = steps(out)
            print(f"bench: images: cpu rebuild, nothing changed: {seconds:.1f} s, {cached} of {total} steps from "
                  "the cache")
            # A code-only change (one module under ci/ edited, in the copy), built under another tag.
            module = context / "ci" / "__init__.py"
            module.write_text(module.read_text() + f"\n# benchmarks/images.py: a code change {time.time()}\n")
            seconds, out = run_build("cpu", context, no_cache=False, tag=BENCH_TAG)
            image_build.podman("rmi", BENCH_TAG, check=False, capture=True)
            total, cached, rebuilt = steps(out)
            print(f"bench: images: cpu warm rebuild after a code-only change: {seconds:.1f} s, {cached} of {total} "
                  f"steps from the cache, rebuilt: {' | '.join(rebuilt) or 'none'}")
        else:
            print("bench: images: cpu rebuilds: not measured (quick mode reuses built images, and the cpu image "
                  "is not built: make images IMAGES=cpu)")
    if image_build.image_exists(image_build.BASE):
        print(f"bench: images: size debian base: {size_mb(image_build.BASE, eng):.0f} MB")
    for name in image_build.NAMES:
        tag = image_build.image_tag(name)
        if image_build.image_exists(tag):
            print(f"bench: images: size {name}: {size_mb(tag, eng):.0f} MB")
        else:
            print(f"bench: images: size {name}: not built here (make images builds it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
