"""Platform facts for the JUnit suite: Jetson model, L4T release, power mode where readable; else 'emulated'."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

MODEL = Path("/proc/device-tree/model")
L4T = Path("/etc/nv_tegra_release")


def facts(emulated: bool) -> list[tuple[str, str]]:
    """[(property, value)] for the suite: `hil.platform`, and on a Jetson its model, L4T and power mode."""
    out = [("hil.platform", "emulated" if emulated else "device")]
    if MODEL.exists():
        out.append(("hil.jetson.model", MODEL.read_bytes().rstrip(b"\x00").decode(errors="replace").strip()))
    if L4T.exists():
        m = re.search(r"R(\d+).*REVISION:\s*([\d.]+)", L4T.read_text(errors="replace"))
        out.append(("hil.l4t", f"{m.group(1)}.{m.group(2)}" if m else L4T.read_text().splitlines()[0]))
    mode = power_mode()
    if mode:
        out.append(("hil.power_mode", mode))
    if not MODEL.exists():
        out.append(("hil.host", "not a Jetson (no /proc/device-tree/model)"))
    return out


def power_mode() -> str:
    """`nvpmodel -q` (first line, e.g. 'NV Power Mode: MAXN'), when the tool is there."""
    tool = shutil.which("nvpmodel")
    if not tool:
        return ""
    try:
        out = subprocess.run([tool, "-q"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    line = next((ln for ln in out.splitlines() if "Power Mode" in ln), "")
    return line.split(":", 1)[-1].strip()
