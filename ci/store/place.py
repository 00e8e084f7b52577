"""Where a stage runs, as its cache key sees it: Python, OS, CPU architecture, accelerator, tool versions, env.

Two kinds of place (DESIGN.md "Store"; docs/store.md "What a key sees"):
- `pod`: a Jenkins pod, known from its pod template and image WITHOUT starting it, so the plan step on a CPU pod
  decides for the GPU and Jetson pods before they are requested. The template gives the image, the CPU
  architecture (nodeSelector kubernetes.io/arch), the accelerator (nvidia.com/gpu resources, runtimeClassName)
  and the container's env; the image's Dockerfile (images/*/Dockerfile, found by its `dev.hilci.image` label)
  gives its base, Python, CUDA, L4T and JetPack's TensorRT through `dev.hilci.*` labels. Tools: the exact pin
  of the lock (constraints.txt, its markers evaluated for that image's Python and architecture); a tool the lock
  does not pin there is keyed as "from image <ref>" (what the image installed), never by a range.
- `local`: this machine, as installed: Python, platform.machine(), an NVIDIA driver or Jetson (L4T) when
  present, each tool's installed version (importlib.metadata; torch's CUDA build from its metadata), and the
  env variables the stage reads. Installed wins over the lock: the key must see what runs, and the plan's why
  says "tool numpy 2.4.6 -> 2.4.7" when a venv drifts.
A laptop's CPU entry and a GPU pod's entry therefore never share a key.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

import yaml

from hilci.util.meaning import meaning_digest
from hilci.util.versions import installed_version

LOCAL, POD = "local", "pod"
PLACE_ENV = "HILCI_KEY_PLACE"  # local | pod: overrides the guess below
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}  # kubernetes.io/arch -> PEP 508 platform_machine
L4T_RELEASE = Path("/etc/nv_tegra_release")
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*?)\s*(?:;(.*))?$")
_LABEL = re.compile(r'^\s*LABEL\s+(dev\.hilci\.[a-z0-9.-]+)="([^"]*)"', re.M)


def default_place() -> str:
    """`pod` inside a Jenkins build or a hilci pod template (it sets HILCI_STORE_SECRET), else `local`."""
    chosen = os.environ.get(PLACE_ENV, "").strip()
    if chosen in (LOCAL, POD):
        return chosen
    return POD if os.environ.get("JENKINS_URL") or os.environ.get("HILCI_STORE_SECRET") else LOCAL


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(root: Path, environment: dict[str, str] | None) -> dict[str, str]:
    """`name -> exact version` from constraints.txt; a line whose marker is false for `environment` is left
    out (None: markers are not evaluated). Only `==` pins count: a range is never a key part."""
    path = root / "constraints.txt"
    pins: dict[str, str] = {}
    if not path.is_file():
        return pins
    for line in path.read_text(errors="replace").splitlines():
        m = _REQ.match(line.split("#", 1)[0])
        if not m or not m.group(3).startswith("==") or any(c in m.group(3) for c in ",<>!~*"):
            continue
        marker = (m.group(4) or "").strip()
        if marker and environment is not None and not _marker_true(marker, environment):
            continue
        pins[normalize(m.group(1))] = m.group(3)[2:].strip()
    return pins


def _marker_true(marker: str, environment: dict[str, str]) -> bool:
    from packaging.markers import InvalidMarker, Marker

    try:
        return Marker(marker).evaluate(environment)
    except InvalidMarker:
        return False


# -- local --------------------------------------------------------------------------------------------------
def _torch_cuda() -> str | None:
    """The CUDA version torch was built for, read from its installed version.py (torch is not imported)."""
    try:
        from importlib import metadata

        text = Path(metadata.distribution("torch").locate_file("torch/version.py")).read_text(errors="replace")
    except Exception:  # not installed, or an odd layout: the torch version alone keys it
        return None
    m = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]?([\w.]+)", text, re.M)
    return m.group(1) if m else None


def local_accelerator() -> dict[str, Any]:
    if L4T_RELEASE.exists():
        m = re.search(r"R(\d+).*REVISION:\s*([\d.]+)", L4T_RELEASE.read_text(errors="replace"))
        return {"kind": "nvidia", "l4t": f"{m.group(1)}.{m.group(2)}" if m else "unknown"}
    if Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists():
        return {"kind": "nvidia"}
    return {"kind": "none"}


def local_place(tools: tuple[str, ...], env: tuple[str, ...]) -> dict[str, Any]:
    versions = {t: installed_version(t) or "not installed" for t in tools}
    if "torch" in tools and versions["torch"] != "not installed":
        versions["torch"] += f" (cuda {_torch_cuda() or 'none'})"
    return {"kind": LOCAL, "python": ".".join(platform.python_version_tuple()[:2]),
            "system": platform.system().lower(), "arch": _ARCH.get(platform.machine().lower(), platform.machine()),
            "accelerator": local_accelerator(), "tools": versions,
            "env": {name: os.environ.get(name) for name in env}}


# -- pod ----------------------------------------------------------------------------------------------------
def image_labels(root: Path, image: str) -> tuple[str | None, dict[str, str]]:
    """The Dockerfile (repo-relative) that builds `image` and its `dev.hilci.*` labels; (None, {}) if none."""
    for dockerfile in sorted((root / "images").glob("*/Dockerfile")):
        text = dockerfile.read_text(errors="replace")
        labels = dict(_LABEL.findall(text))
        if labels.get("dev.hilci.image") == image:
            bases = re.findall(r"^\s*FROM\s+(\S+)", text, re.M | re.I)
            labels["dev.hilci.base"] = bases[-1] if bases else "unknown"
            return str(dockerfile.relative_to(root)), labels
    return None, {}


def _container(pod: dict) -> dict:
    containers = [c for c in (pod.get("spec") or {}).get("containers") or [] if isinstance(c, dict)]
    return next((c for c in containers if c.get("name") == "hilci"),
                next((c for c in containers if c.get("name") != "jnlp"), {}))


def pod_place(root: Path, template: Path | None, tools: tuple[str, ...], env: tuple[str, ...]) -> dict[str, Any]:
    if template is None or not template.is_file():
        return {"kind": POD, "template": None}
    try:
        pod = yaml.safe_load(template.read_text(errors="replace")) or {}
    except yaml.YAMLError:
        pod = {}
    pod = pod if isinstance(pod, dict) else {}
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    container = _container(pod)
    image = str(container.get("image", ""))
    dockerfile, labels = image_labels(root, image)
    arch = str((spec.get("nodeSelector") or {}).get("kubernetes.io/arch", "unknown"))
    resources = container.get("resources") or {}
    gpus = max((int(str((resources.get(k) or {}).get("nvidia.com/gpu", 0)) or 0) for k in ("requests", "limits")),
               default=0)
    accelerator: dict[str, Any] = {"kind": "nvidia" if gpus else "none"}
    if gpus:
        accelerator.update({"gpus": gpus, "runtime_class": spec.get("runtimeClassName"),
                            **{k: labels[f"dev.hilci.{k}"] for k in ("cuda", "l4t", "jetpack", "tensorrt")
                               if f"dev.hilci.{k}" in labels}})
    python = labels.get("dev.hilci.python", "unknown")
    marker_env = {"python_version": python, "python_full_version": python + ".0",
                  "platform_machine": _MACHINE.get(arch, arch), "sys_platform": "linux",
                  "platform_system": "Linux", "os_name": "posix", "implementation_name": "cpython",
                  "platform_python_implementation": "CPython", "extra": ""}
    pins = lock_pins(root, marker_env)
    versions = {}
    for tool in tools:
        from_image = labels.get(f"dev.hilci.{normalize(tool)}")
        versions[tool] = pins.get(normalize(tool)) or (f"{from_image} (image)" if from_image else
                                                       f"from image {image}")
    values = {str(e.get("name")): (e["value"] if "value" in e else f"from {e.get('valueFrom')}")
              for e in container.get("env") or [] if isinstance(e, dict)}
    return {"kind": POD, "template": meaning_digest(template), "image": image, "dockerfile": dockerfile,
            "base": labels.get("dev.hilci.base"), "python": python, "system": "linux", "arch": arch,
            "accelerator": accelerator, "tools": versions, "env": {name: values.get(name) for name in env}}
