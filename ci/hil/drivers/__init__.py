"""Device drivers, the host side of each device; a rig device's driver comes from its kind's registration."""

from __future__ import annotations

from hilci.hil.drivers.base import DeviceError

__all__ = ["DeviceError", "driver_for"]


def driver_for(device, port: str | None = None):
    """A (closed) driver for a rig device; `port` overrides the rig's (an emulator's port)."""
    return device.kind.driver_factory()(device, port)
