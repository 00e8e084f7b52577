"""Device drivers by rig `driver:` name; each imports its device library only when used."""

from __future__ import annotations

import importlib

from ci.hil.drivers.base import DeviceError

__all__ = ["DRIVERS", "DeviceError", "driver_for"]

DRIVERS = {
    "imu": "ci.hil.drivers.imu:ImuDriver",
    "gnss": "ci.hil.drivers.gnss:GnssDriver",
    "servo": "ci.hil.drivers.servo:ServoDriver",
    "camera": "ci.hil.drivers.camera:camera_driver",
}


def driver_for(device, port: str | None = None):
    """A (closed) driver for a rig device; `port` overrides the rig's (an emulator's port)."""
    module, _, cls = DRIVERS[device.driver].partition(":")
    return getattr(importlib.import_module(module), cls)(device, port)
