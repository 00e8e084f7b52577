"""Start, command and stop emulator processes; what the plugin, `hilci emulate` and the tests use."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hilci.hil.faults import Fault
from hilci.hil.rig import Device, Rig
from hilci.util.processes import terminate
from hilci.util.settings import as_dict


class EmulatorError(RuntimeError):
    """An emulator did not start or did not answer; the message names the device."""


@dataclass
class EmulatorHandle:
    """A running emulator: its process, the port clients open and its control socket."""

    device: str
    kind: str
    port: str
    control: str
    proc: subprocess.Popen

    def command(self, cmd: dict[str, Any], timeout: float = 3.0) -> dict[str, Any]:
        return send(self.control, cmd, timeout)

    def fault(self, fault: Fault) -> dict[str, Any]:
        return self.command({"cmd": "fault", **fault.to_dict()})

    def stop(self, timeout: float = 3.0) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # the emulator stops when its stdin closes
            except OSError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                terminate(self.proc, timeout)
        if self.proc.stdout:
            self.proc.stdout.close()


def send(control: str, cmd: dict[str, Any], timeout: float = 3.0) -> dict[str, Any]:
    """One JSON command to an emulator's control socket, one JSON reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(control)
            sock.sendall((json.dumps(cmd) + "\n").encode())
            reply = sock.makefile("r").readline()
        except OSError as exc:
            raise EmulatorError(f"emulator control {control}: {exc}") from None
    if not reply:
        raise EmulatorError(f"emulator control {control}: no reply")
    return json.loads(reply)


def spec_for(device: Device, link: Path) -> dict[str, Any]:
    """What the emulator process needs: its class, the device's settings (emulator-only ones on top), faults."""
    values = as_dict(device.settings)
    params = {**{k: v for k, v in values.items() if k not in ("port", "baud", "emulator")}, **values["emulator"]}
    emulator, root = device.kind.emulator_ref()
    return {"kind": device.driver, "emulator": emulator, "import_root": root, "name": device.name,
            "link": str(link), "baud": device.baud, "params": params,
            "faults": [f.to_dict() for f in device.faults], "allowed_faults": list(device.kind.faults)}


def start(device: Device, link: Path, timeout: float = 10.0) -> EmulatorHandle:
    """Start one device's emulator and wait for the line that says where its port is."""
    env = dict(os.environ, MAVLINK20="1")
    root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen([sys.executable, "-m", "hilci.hil.emulators", json.dumps(spec_for(device, link))],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True)
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else b""
    if not line:
        proc.kill()
        proc.wait(5)
        raise EmulatorError(f"{device.label}: emulator did not start within {timeout:g} s "
                            f"(exit code {proc.returncode})")
    info = json.loads(line)
    return EmulatorHandle(device=device.name, kind=device.driver, port=info["port"], control=info["control"],
                          proc=proc)


class RigEmulators:
    """All emulators of one emulated rig, each in its own process, with ports under one temporary folder."""

    def __init__(self, rig: Rig, folder: Path | None = None):
        self.rig = rig
        self.folder = folder or Path(tempfile.mkdtemp(prefix=f"hilci-{rig.name}-"))
        self.handles: dict[str, EmulatorHandle] = {}

    def start(self) -> RigEmulators:
        try:
            for device in self.rig.devices.values():
                self.handles[device.name] = start(device, self.folder / device.name)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for handle in self.handles.values():
            handle.stop()
        self.handles.clear()
        try:
            for leftover in self.folder.iterdir():
                leftover.unlink()
            self.folder.rmdir()
        except OSError:
            pass

    def ports(self) -> dict[str, dict[str, str]]:
        return {name: {"port": h.port, "control": h.control, "pid": str(h.proc.pid)}
                for name, h in self.handles.items()}

    def __enter__(self) -> RigEmulators:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(predicate, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
