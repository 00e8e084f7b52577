"""podman as `hilci pods` runs it: every command with the machine's container settings and a time limit.

DESIGN.md "Containers on this machine": runc with cgroupfs and settable ulimits, given to every podman command
(`kube play` included) as CONTAINERS_CONF=images/containers.conf unless the caller set its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hilci.errors import UsageError

DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Result:
    rc: int
    output: str  # stdout and stderr together, in order


class Podman:
    """podman with CONTAINERS_CONF set; `run` never raises on a non-zero exit, only on a missing podman."""

    def __init__(self, root: Path):
        if not shutil.which("podman"):
            raise UsageError("podman is missing: run 'make container-tools' (as root: apt-get install -y podman "
                             "runc), then again")
        conf = root / "images" / "containers.conf"
        self.env = dict(os.environ)
        if "CONTAINERS_CONF" not in self.env and conf.is_file():
            self.env["CONTAINERS_CONF"] = str(conf)

    def run(self, *args: str, timeout_s: float = DEFAULT_TIMEOUT_S, log: Path | None = None) -> Result:
        """`podman ARGS`; output appended to `log` when given. A timeout kills it and returns rc 124."""
        try:
            proc = subprocess.run(["podman", *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, text=True, errors="replace", timeout=timeout_s)
            result = Result(proc.returncode, proc.stdout)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            result = Result(124, out + f"\n(podman {args[0]} stopped after {timeout_s:.0f} s)")
        if log is not None:
            with open(log, "a") as fh:
                fh.write(f"$ podman {' '.join(args)}\n{result.output}\n(exit {result.rc})\n")
        return result

    def image_exists(self, tag: str) -> bool:
        return self.run("image", "exists", tag, timeout_s=30).rc == 0
