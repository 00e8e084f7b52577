"""The health check: every device asked once, in parallel, before any test; a silent one fails only its own tests.

Also what a rig's device plugin on a cluster would report: a verdict per device, never "healthy forever".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from hilci.hil.drivers import DeviceError, driver_for
from hilci.hil.locks import DeviceBusy, DeviceLock
from hilci.hil.rig import Device


def probe(device: Device, port: str, lock: DeviceLock, timeout: float) -> str:
    """"" when the device answered within `timeout`, else the one-line reason naming device and port."""
    message = f"{device.name} at {port} did not answer within {timeout:g} s"
    try:
        with lock:
            driver = driver_for(device, port)
            try:
                driver.open(timeout=timeout)
                driver.health(timeout)
                return ""
            finally:
                driver.close()
    except (DeviceError, DeviceBusy) as exc:
        detail = str(exc).split(": ", 1)[-1]
        return message if "did not answer" in detail else f"{message} ({detail})"


def check(devices: Iterable[Device], port: Callable[[Device], str], lock: Callable[[Device], DeviceLock],
          timeout: Callable[[Device], float]) -> dict[str, str]:
    """{device label: "" or the reason} for every device, asked in parallel."""
    verdicts: dict[str, str] = {}

    def run(device: Device) -> None:
        verdicts[device.label] = probe(device, port(device), lock(device), timeout(device))

    threads = [threading.Thread(target=run, args=(d,), daemon=True) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return verdicts
