"""`hw_error` on a sensor means what its protocol can say: MAVLink SYS_STATUS health bits for the IMU, NMEA fix
quality 0 (and RMC status V) for the GNSS receiver; checked through the real drivers on the emulators' ptys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hilci.hil.drivers import driver_for
from hilci.hil.emulators.process import RigEmulators
from hilci.hil.rig import load_rig

pytestmark = [pytest.mark.emulator]  # what it needs: the fast tier leaves it out


def emulated(tmp_path: Path, devices: dict):
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump({"name": "proto", "emulate": True, "devices": devices}))
    return load_rig(path)


def test_imu_hw_error_clears_sys_status_health_bits_and_gnss_loses_its_fix(tmp_path):
    rig = emulated(tmp_path, {
        "imu": {"driver": "imu", "baud": 921600, "faults": [{"kind": "hw_error", "code": 2}]},
        "gnss": {"driver": "gnss", "baud": 115200, "faults": [{"kind": "hw_error"}]},
        "healthy": {"driver": "imu", "baud": 921600},
    })
    with RigEmulators(rig) as emus:
        caps = {}
        for name in ("imu", "gnss", "healthy"):
            driver = driver_for(rig.devices[name], emus.handles[name].port).open()
            try:
                caps[name] = driver.capture(0.8)
            finally:
                driver.close()
    imu, gnss, healthy = caps["imu"], caps["gnss"], caps["healthy"]
    assert not imu.error and imu.statuses >= 2 and imu.unhealthy == 2, imu
    assert imu.unhealthy_sensors() == "3D accelerometer"
    # still streaming: the data flows, the autopilot says it is bad (a count, not a rate: a loaded CI host may
    # schedule the emulator late, and 0.8 s of a 200 Hz IMU gave 52 messages there; none would mean it stopped)
    assert len(imu.arrivals_ns) > 10
    assert healthy.statuses >= 2 and healthy.unhealthy == 0
    assert gnss.fix_quality and set(gnss.fix_quality) == {0} and set(gnss.rmc_status) == {"V"}, gnss
