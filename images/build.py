"""Build the pod images (images/*/Dockerfile), each tagged with the name its pod templates use (LABEL
dev.hilci.image). `make images` runs this; from the repository root: `python3 images/build.py [NAME ...]`.

With a Docker engine (`docker info` answers), the Dockerfiles are built as they are: the real bases, PyPI and
PyTorch's indexes. The jetson image is arm64: build it on a Jetson or with buildx for linux/arm64.

Without one, podman builds them (DESIGN.md "Containers on this machine"), every podman command with
CONTAINERS_CONF=images/containers.conf. The bases cannot be pulled there, so each is replaced (`podman build
--from`) by a stand-in built on the machine (images/standins/*.Containerfile) over a Debian bookworm minbase made
with debootstrap (made once: skipped while the image exists). pip in the builds uses this machine's pip sources
(find-links, extra indexes, CA bundle, from `pip config list`), mounted read-only and passed as build args. The
jetson stand-in is amd64 without JetPack: it is built with HILCI_NO_TENSORRT set, which the Dockerfile honours
visibly (label dev.hilci.no-tensorrt).

Standard library only: it runs before any venv exists.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "images"
CONTAINERS_CONF = IMAGES / "containers.conf"
BASE = "localhost/hilci-standin/debian:bookworm"
STANDIN_HOST_CA = "/run/host-ca.crt"
PY310_MOUNT = "/run/python3.10"
NO_TENSORRT = "amd64 stand-in for l4t-jetpack built by images/build.py: no JetPack, no TensorRT"
NAMES = ("cpu", "gpu", "jetson")


class BuildError(RuntimeError):
    pass


def image_tag(name: str) -> str:
    """The tag the pod templates use: the Dockerfile's LABEL dev.hilci.image."""
    text = (IMAGES / name / "Dockerfile").read_text()
    m = re.search(r'^LABEL dev\.hilci\.image="([^"]+)"', text, re.M)
    if not m:
        raise BuildError(f"images/{name}/Dockerfile has no LABEL dev.hilci.image")
    return m.group(1)


def standin_tag(name: str) -> str:
    return f"localhost/hilci-standin/{name}:latest"


def docker_works() -> bool:
    """A `docker` command is not enough: its engine must answer (a client alone is common)."""
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
    if not shutil.which("podman"):
        raise BuildError("podman is missing (and no Docker engine answers): run 'make podman' (as root: "
                         "apt-get install -y podman runc debootstrap), then again")
    cmd = ["podman", *args]
    proc = subprocess.run(cmd, env=podman_env(), text=True, cwd=ROOT,
                          stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None)
    if check and proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed (exit {proc.returncode})"
                         + (f": {proc.stderr.strip()[-2000:]}" if capture else ""))
    return proc


def image_exists(tag: str) -> bool:
    return podman("image", "exists", tag, check=False).returncode == 0


def debian_mirror() -> str:
    """The machine's own Debian mirror: deb822 sources first, then the one-line format."""
    for path in [Path("/etc/apt/sources.list.d/debian.sources")]:
        if path.exists():
            m = re.search(r"^URIs:\s*(\S+)", path.read_text(), re.M)
            if m:
                return m.group(1)
    lists = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for path in lists:
        if path.exists():
            m = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", path.read_text(), re.M)
            if m:
                return m.group(1)
    return "http://deb.debian.org/debian"


def ensure_base(log=print) -> bool:
    """The Debian bookworm minbase image; made with debootstrap unless it exists. True when it was made."""
    if image_exists(BASE):
        return False
    if not shutil.which("debootstrap"):
        raise BuildError("debootstrap is missing: run 'make podman' (as root: apt-get install -y debootstrap)")
    mirror = debian_mirror()
    with tempfile.TemporaryDirectory(prefix="hilci-debootstrap-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        log(f"debootstrap --variant=minbase bookworm {rootfs} {mirror}")
        proc = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"debootstrap failed (exit {proc.returncode}): {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(["podman", "import", "-", BASE], stdin=tar.stdout, env=podman_env(),
                             capture_output=True, text=True)
        tar.stdout.close()
        if tar.wait() != 0 or imp.returncode != 0:
            raise BuildError(f"podman import of the debootstrap tree failed: {imp.stderr[-1500:]}")
    return True


def pip_sources() -> tuple[list[str], list[str]]:
    """This machine's pip sources as (build args, volumes): file:// indexes and find-links folders mounted
    read-only at the same paths, the CA bundle at another path (mounting it over the image's own breaks apt)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    for pip in ("pip3", "pip"):  # a python3 without its pip module: the machine's pip command reads the same
        if proc.returncode == 0 or not shutil.which(pip):
            break
        proc = subprocess.run([pip, "config", "list"], capture_output=True, text=True)
    conf: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        conf[key.split(".", 1)[-1]] = value.strip().strip("'\"")
    args: list[str] = []
    volumes: list[str] = []

    def mount(path: str) -> None:
        if Path(path).exists() and f"{path}:{path}:ro" not in volumes:
            volumes.append(f"{path}:{path}:ro")

    if conf.get("find-links"):
        links = conf["find-links"].split()
        for link in links:
            mount(link.removeprefix("file://"))
        args.append("PIP_FIND_LINKS=" + " ".join(links))
    if conf.get("extra-index-url"):
        urls = conf["extra-index-url"].split()
        for url in urls:
            if url.startswith("file://"):
                mount(str(Path(url.removeprefix("file://")).parent))
        args.append("PIP_EXTRA_INDEX_URL=" + " ".join(urls))
    cert = conf.get("cert") or "/etc/ssl/certs/ca-certificates.crt"
    if Path(cert).exists():
        volumes.append(f"{cert}:{STANDIN_HOST_CA}:ro")
        args.append(f"PIP_CERT={STANDIN_HOST_CA}")
    return args, volumes


def pyenv_python310() -> Path:
    """The machine's CPython 3.10 (JetPack 6's Python) for the jetson stand-in."""
    if shutil.which("pyenv"):
        proc = subprocess.run(["pyenv", "prefix", "3.10"], capture_output=True, text=True)
        if proc.returncode != 0:
            proc = subprocess.run(["pyenv", "prefix", "3.10.13"], capture_output=True, text=True)
        if proc.returncode == 0 and (Path(proc.stdout.strip()) / "bin" / "python3.10").exists():
            return Path(proc.stdout.strip())
    for prefix in (Path.home() / ".pyenv" / "versions").glob("3.10.*"):
        if (prefix / "bin" / "python3.10").exists():
            return prefix
    raise BuildError("the jetson stand-in needs a CPython 3.10 (JetPack 6's): none found with pyenv "
                     "(pyenv install 3.10.13)")


def build_standin(name: str) -> str:
    tag = standin_tag(name)
    args = ["build", "--network", "host", "-f", str(IMAGES / "standins" / f"{name}.Containerfile"), "-t", tag]
    if name == "jetson":
        args += ["-v", f"{pyenv_python310()}:{PY310_MOUNT}:ro"]
    podman(*args, str(IMAGES / "standins"))
    return tag


def podman_build_command(name: str, base: str, pip_args: list[str], volumes: list[str]) -> list[str]:
    cmd = ["build", "--network", "host", "--from", base, "--label", f"dev.hilci.standin-base={base}",
           "-f", str(IMAGES / name / "Dockerfile"), "-t", image_tag(name)]
    for arg in pip_args:
        cmd += ["--build-arg", arg]
    if name == "jetson":
        cmd += ["--build-arg", f"HILCI_NO_TENSORRT={NO_TENSORRT}"]
    for v in volumes:
        cmd += ["-v", v]
    return cmd + [str(ROOT)]


def build(names: list[str], engine: str | None = None, log=print) -> dict[str, float]:
    """Build the named images; returns seconds per image (the base and stand-ins under 'base' and 'standins')."""
    engine = engine or ("docker" if docker_works() else "podman")
    times: dict[str, float] = {}
    if engine == "docker":
        for name in names:
            cmd = ["docker", "build", "-f", str(IMAGES / name / "Dockerfile"), "-t", image_tag(name), str(ROOT)]
            log(" ".join(cmd))
            t0 = time.monotonic()
            if subprocess.run(cmd, cwd=ROOT).returncode != 0:
                raise BuildError(f"docker build of images/{name}/Dockerfile failed")
            times[name] = time.monotonic() - t0
        return times
    t0 = time.monotonic()
    ensure_base(log)
    times["base"] = time.monotonic() - t0
    pip_args, volumes = pip_sources()
    for name in names:
        t0 = time.monotonic()
        base = build_standin(name)
        times[f"standin {name}"] = time.monotonic() - t0
        cmd = podman_build_command(name, base, pip_args, volumes)
        log("CONTAINERS_CONF=images/containers.conf podman " + " ".join(cmd))
        t0 = time.monotonic()
        podman(*cmd)
        times[name] = time.monotonic() - t0
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"the images to build ({', '.join(NAMES)}; "
                        "default all)")
    parser.add_argument("--engine", choices=["docker", "podman"], help="default: docker if its engine answers")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NAMES))
    if unknown:
        parser.error(f"no image {', '.join(unknown)} (there are {', '.join(NAMES)})")
    try:
        times = build(args.names or list(NAMES), args.engine)
    except BuildError as e:
        print(f"images: {e}", file=sys.stderr)
        return 2
    for what, seconds in times.items():
        print(f"images: {what}: {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
