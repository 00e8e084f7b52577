"""The one place the device plugin touches the HIL framework: load a rig, ask its devices, resolve their nodes.

Health is the HIL health check (every device of the rig answers, `Driver.health`), run only while the probe holds
the rig lock that a pytest session holds shared from its start to its end (`hilci.hil.locks.RigLock`), and under
the same per-device `fcntl` locks the tests take (`DeviceLock`): no device of a rig that a session holds is
opened, between its tests included (the probe would steal their bytes), and the rig keeps its last verdict.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hilci.hil import fleet
from hilci.hil.drivers import DeviceError, driver_for
from hilci.hil.locks import DeviceBusy, DeviceLock, RigLock
from hilci.hil.rig import Rig, RigError, load_rig

__all__ = ["DeviceError", "Probe", "RigError", "device_nodes", "fleet_verdict", "load_rig", "probe_rig"]

PROBE_TIMEOUT_CAP_S = 3.0  # a probe never waits longer than this per device, whatever health_timeout_s says


@dataclass(frozen=True)
class Probe:
    """One look at a rig: healthy, or why not; `in_use` when a test held a device and nothing was asked."""

    healthy: bool
    reason: str = ""
    in_use: bool = False


def probe_rig(rig: Rig, lock_folder: Path | None = None) -> Probe:
    """Ask every device of the rig (in turn) whether it answers; stop at the first that does not. Nothing is
    opened while a test session holds the rig."""
    rig_lock = RigLock([d.port for d in rig.devices.values()], rig.name, folder=lock_folder)
    if not rig_lock.try_for_probe():
        return Probe(healthy=False, reason=f"rig {rig.name}: held by a test session ({rig_lock.path})", in_use=True)
    try:
        return _probe_devices(rig, lock_folder)
    finally:
        rig_lock.release()


def _probe_devices(rig: Rig, lock_folder: Path | None) -> Probe:
    timeout = min(float(rig.settings.health_timeout_s), PROBE_TIMEOUT_CAP_S)
    for device in rig.devices.values():
        lock = DeviceLock(device.port, device.label, timeout=0.0, folder=lock_folder)
        try:
            lock.acquire()
        except DeviceBusy as exc:
            return Probe(healthy=False, reason=str(exc), in_use=True)
        try:
            _shareable(lock.path)
            driver = driver_for(device, device.port)
            try:
                driver.open(timeout=timeout)
                driver.health(timeout)
            finally:
                driver.close()
        except DeviceError as exc:
            return Probe(healthy=False, reason=str(exc))
        except Exception as exc:  # a driver library failing in its own way is still this device's fault
            return Probe(healthy=False, reason=f"{device.label}: {type(exc).__name__}: {exc}")
        finally:
            lock.release()
    return Probe(healthy=True)


def _shareable(path: Path) -> None:
    """The plugin runs as root, tests as an unprivileged user: both must be able to open the lock file."""
    try:
        os.chmod(path, 0o666)
    except OSError:
        pass


def device_nodes(rig: Rig) -> dict[str, str]:
    """Device name -> the node its port resolves to right now (`/dev/serial/by-id/...` -> `/dev/ttyACM0`).

    Resolved at each allocation, so a port renumbered after a power cycle is found again by the next pod."""
    nodes = {}
    for device in rig.devices.values():
        host = os.path.realpath(device.port)
        if not os.path.exists(host):
            raise DeviceError(f"{device.label}: {device.port} does not exist on this node")
        nodes[device.name] = host
    return nodes


def fleet_verdict(rig: Rig, probe: Probe, lock_folder: Path) -> tuple[str, str]:
    """The probe recorded in the fleet state the test sessions share (`hilci.hil.fleet`): a failed one counts
    toward the rig's quarantine, a passing one brings it back. (why the rig is quarantined or '', the line to
    log or '')."""
    where = fleet.folder(lock_folder)
    fleet.register(rig.name, str(rig.path), rig.quarantine, where)
    line = ""
    if not probe.in_use:
        line = fleet.record_health(rig.name, "" if probe.healthy else probe.reason, "device plugin", where)
    return fleet.quarantined(rig.name, where), line
