"""The built-in device kinds: imu, gnss, camera and servo, each one registration with its settings.

Drivers and emulators are named by path, so loading a rig imports no device library.
"""

from __future__ import annotations

from ci.hil.registry import ACTUATOR, SENSOR, DeviceKind, DeviceSettings, register
from ci.settings import int_list, integer, number, settings


@settings
class StreamSettings(DeviceSettings):
    """A device that talks on its own at a rate: rate, jitter and drop budgets, and when silence is a stall."""

    rate_hz: float = number(10.0, help="expected message rate")
    rate_tolerance_pct: float = number(2.0, help="measured rate within nominal ± this")
    jitter_p99_ms: float = number(5.0, help="budget on |inter-arrival - period|, p99")
    max_drops: int = integer(0, help="lost messages allowed in a window")
    stall_timeout_s: float = number(0.5, help="silence longer than this ends a capture as 'stalled'")


@settings
class ImuSettings(StreamSettings):
    rate_hz: float = number(200.0, help="HIGHRES_IMU rate configured on the autopilot")
    jitter_p99_ms: float = number(1.5, help="budget on |inter-arrival - period|, p99")
    gravity: float = number(9.80665, help="|acc| at rest, m/s^2")
    gravity_tolerance: float = number(0.3, help="m/s^2")


@settings
class GnssSettings(StreamSettings):
    rate_hz: float = number(10.0, help="GGA epochs per second")
    min_fix_quality: int = integer(1, help="GGA quality: 1 GPS fix, 2 DGPS, 4 RTK fixed")
    min_satellites: int = integer(4)


@settings
class CameraSettings(StreamSettings):
    rate_hz: float = number(30.0, help="frames per second")
    rate_tolerance_pct: float = number(3.0)
    jitter_p99_ms: float = number(8.0)
    width: int = integer(32, help="frame width, pixels")
    height: int = integer(32, help="frame height, pixels")


@settings
class ServoSettings(DeviceSettings):
    ids: list = int_list([1], help="bus ids tested; each missing id costs ~34 ms of packet timeout")
    model_number: int = integer(1060, help="X-series model number ping must report (1060: XL430-W250)")
    positions: list = int_list([1024, 3072, 2048], help="goal positions (ticks) for the reach test")
    position_tolerance: float = number(20, help="ticks")
    reach_s: float = number(1.5, help="each goal reached within this")
    roundtrip_p99_ms: float = number(5.0, help="read Present Position, p99")
    estop_ms: float = number(50.0, help="torque off -> Moving 0 and Torque Enable 0")
    roundtrip_samples: int = integer(200)


register(DeviceKind("imu", SENSOR, ImuSettings, "ci.hil.drivers.imu:ImuDriver",
                    "ci.hil.emulators.imu:ImuEmulator", "IMU / flight controller, MAVLink 2 (pymavlink)"))
register(DeviceKind("gnss", SENSOR, GnssSettings, "ci.hil.drivers.gnss:GnssDriver",
                    "ci.hil.emulators.gnss:GnssEmulator", "GNSS receiver, NMEA 0183 (pynmea2)"))
register(DeviceKind("servo", ACTUATOR, ServoSettings, "ci.hil.drivers.servo:ServoDriver",
                    "ci.hil.emulators.servo:ServoEmulator", "Dynamixel Protocol 2.0 servos (dynamixel-sdk)"))
register(DeviceKind("camera", SENSOR, CameraSettings, "ci.hil.drivers.camera:camera_driver",
                    "ci.hil.emulators.camera:CameraEmulator", "camera: V4L2 (OpenCV) or the emulator's stream"))
