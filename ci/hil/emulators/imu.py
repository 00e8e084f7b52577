"""IMU / flight controller emulator: MAVLink 2 HIGHRES_IMU at a rate, plus a 1 Hz HEARTBEAT, from one sender."""

from __future__ import annotations

import os
import time
from typing import Any

os.environ.setdefault("MAVLINK20", "1")  # before mavutil/dialect import: speak MAVLink 2

from pymavlink.dialects.v20 import common as mavlink  # noqa: E402

from hilci.hil.emulators.base import StreamEmulator  # noqa: E402

GRAVITY = 9.80665
HIGHRES_FIELDS = 0x1FFF  # acc, gyro, mag, pressures, temperature updated
SENSORS = (mavlink.MAV_SYS_STATUS_SENSOR_3D_GYRO | mavlink.MAV_SYS_STATUS_SENSOR_3D_ACCEL
           | mavlink.MAV_SYS_STATUS_SENSOR_3D_MAG | mavlink.MAV_SYS_STATUS_SENSOR_ABSOLUTE_PRESSURE)
STATUS_PERIOD_S = 0.25  # SYS_STATUS at 4 Hz, as an autopilot's extended-status stream


class ImuEmulator(StreamEmulator):
    """A flight controller at rest: gravity on z plus sensor noise, microsecond boot timestamps, and SYS_STATUS
    whose health bits drop the sensors a `hw_error` names (its `code` & gyro|accel|mag|baro; else gyro+accel)."""

    kind = "imu"
    default_rate_hz = 200.0

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        self.noise = float(self.params.get("noise", 0.02))  # m/s^2, 1 sigma
        self.sysid = int(self.params.get("sysid", 1))
        self.mav = mavlink.MAVLink(None, srcSystem=self.sysid, srcComponent=mavlink.MAV_COMP_ID_AUTOPILOT1)
        self.boot = time.monotonic()
        self.last_heartbeat = 0.0
        self.last_status = 0.0

    def reset(self) -> None:
        self.mav.seq = 0
        self.boot = time.monotonic()

    def _pack(self, msg) -> bytes:
        data = msg.pack(self.mav)
        self.mav.seq = (self.mav.seq + 1) % 256  # sequence is per sender, across message types
        return bytes(data)

    def message(self) -> bytes:
        now = time.monotonic()
        out = b""
        if now - self.last_heartbeat >= 1.0:
            self.last_heartbeat = now
            out += self._pack(self.mav.heartbeat_encode(mavlink.MAV_TYPE_QUADROTOR, mavlink.MAV_AUTOPILOT_PX4,
                                                         0, 0, mavlink.MAV_STATE_STANDBY))
        if now - self.last_status >= STATUS_PERIOD_S:
            self.last_status = now
            out += self._pack(self.status())
        g = self.rng.gauss
        n = self.noise
        msg = self.mav.highres_imu_encode(
            int((now - self.boot) * 1e6), g(0, n), g(0, n), -GRAVITY + g(0, n), g(0, 0.001), g(0, 0.001),
            g(0, 0.001), 0.21, 0.02, -0.43, 1013.25, 0.0, 12.0, 25.0 + g(0, 0.05), HIGHRES_FIELDS)
        return out + self._pack(msg)

    def status(self):
        hw = self.active("hw_error")
        failed = ((hw.code & SENSORS) or (mavlink.MAV_SYS_STATUS_SENSOR_3D_GYRO
                                          | mavlink.MAV_SYS_STATUS_SENSOR_3D_ACCEL)) if hw else 0
        return self.mav.sys_status_encode(SENSORS, SENSORS, SENSORS & ~failed, 150, 12_600, 120, 80,
                                          0, 0, 0, 0, 0, 0)

    def corrupt(self, data: bytes) -> bytes:
        return data[:-2] + bytes([data[-2] ^ 0xFF, data[-1]])  # CRC low byte of the last packet
