"""IMU / flight controller driver: MAVLink 2 HIGHRES_IMU through pymavlink's parser, drops from sequence gaps."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("MAVLINK20", "1")  # before importing the dialect: MAVLink 2

from pymavlink.dialects.v20 import common as mavlink  # noqa: E402

from hilci.hil.drivers.base import DeviceError, SerialStreamDriver  # noqa: E402

MAVLINK2_MAX_BYTES = 280  # the longest MAVLink 2 packet: a cut one cannot leave more behind


@dataclass
class ImuCapture:
    """What arrived in a window: arrival times (ns), the samples, and what went wrong on the wire."""

    arrivals_ns: list[int] = field(default_factory=list)
    time_usec: list[int] = field(default_factory=list)
    accel: list[tuple[float, float, float]] = field(default_factory=list)
    messages: int = 0  # all messages, any type, with a good CRC
    drops: int = 0  # sequence-number gaps, per sender, across message types
    bad_data: int = 0  # CRC errors and bytes that were no MAVLink
    senders: set = field(default_factory=set)
    statuses: int = 0  # SYS_STATUS messages seen
    unhealthy: int = 0  # MAV_SYS_STATUS_SENSOR bits present and enabled but not healthy, over the window
    restart: str = ""  # how the device showed it restarted (time_usec went backwards)
    error: str = ""  # set when the capture ended early (stall, disconnect)

    def unhealthy_sensors(self) -> str:
        """'3D gyro, 3D accelerometer' for the unhealthy bits, as the MAVLink enum describes them."""
        names = mavlink.enums["MAV_SYS_STATUS_SENSOR"]
        return ", ".join(names[bit].description.split(" ", 1)[-1] if bit in names else f"0x{bit:x}"
                         for bit in (1 << i for i in range(32)) if self.unhealthy & bit)

    def gravity(self) -> list[float]:
        return [math.sqrt(x * x + y * y + z * z) for x, y, z in self.accel]


class ImuDriver(SerialStreamDriver):
    """Reads HIGHRES_IMU; a silence longer than `stall_timeout_s` is a stall, a vanished port a disconnect."""

    def _open(self) -> None:
        super()._open()
        self.mav = mavlink.MAVLink(None, srcSystem=255, srcComponent=0)
        self.mav.robust_parsing = True  # bad CRCs come back as MAVLink_bad_data instead of exceptions
        self.last_seq: dict[tuple[int, int], int] = {}

    def capture(self, duration_s: float, *, max_messages: int = 0) -> ImuCapture:
        """Collect HIGHRES_IMU for `duration_s`; a stall, reboot or disconnect ends it with `error` set."""
        cap = ImuCapture()
        self._read(cap, duration_s, max_messages)
        self.check_silence(cap, f"stalled: no HIGHRES_IMU for {self.device.settings.stall_timeout_s:g} s",
                           lambda c, s: self._read(c, s, len(c.arrivals_ns) + 2))
        return cap

    def _read(self, cap: ImuCapture, duration_s: float, max_messages: int) -> None:
        try:
            for chunk, now_ns in self.stream(duration_s, self.device.settings.stall_timeout_s, "HIGHRES_IMU"):
                for msg in self.mav.parse_buffer(chunk) or ():
                    self._account(cap, msg, now_ns)
                    if msg.get_type() == "HIGHRES_IMU":
                        self.alive()
                if max_messages and len(cap.arrivals_ns) >= max_messages:
                    break
        except DeviceError as exc:
            cap.error = str(exc)

    def _account(self, cap: ImuCapture, msg: Any, now_ns: int) -> None:
        if msg.get_type() == "BAD_DATA":
            if self.opened_mid_message(len(msg.get_msgbuf()), MAVLINK2_MAX_BYTES, now_ns):
                return
            cap.bad_data += 1
            self.traffic.add("!!", f"bad data: {msg}", now_ns)
            return
        cap.messages += 1
        self.synced = True
        self.traffic.add("rx", f"seq={msg.get_seq()} {msg}", now_ns)
        sender = (msg.get_srcSystem(), msg.get_srcComponent())
        cap.senders.add(sender)
        seq = msg.get_seq()
        prev = self.last_seq.get(sender)
        if prev is not None:
            cap.drops += (seq - prev - 1) % 256
        self.last_seq[sender] = seq
        if msg.get_type() == "SYS_STATUS":
            cap.statuses += 1
            cap.unhealthy |= (msg.onboard_control_sensors_present & msg.onboard_control_sensors_enabled
                              & ~msg.onboard_control_sensors_health)
        elif msg.get_type() == "HIGHRES_IMU":
            if cap.time_usec and msg.time_usec <= cap.time_usec[-1] and not cap.restart:
                cap.restart = self.rebooted(f"time_usec went backwards ({cap.time_usec[-1]} -> {msg.time_usec} us)")
            cap.arrivals_ns.append(now_ns)
            cap.time_usec.append(msg.time_usec)
            cap.accel.append((msg.xacc, msg.yacc, msg.zacc))

    def health(self, timeout: float) -> dict[str, Any]:
        cap = self.capture(timeout, max_messages=2)
        if len(cap.arrivals_ns) < 2:
            raise self.gone(f"did not answer within {timeout:g} s")
        return {"senders": sorted(cap.senders)}
