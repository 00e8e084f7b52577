"""The built-in device kinds: imu, gnss, camera and servo, each one registration with its settings.

Drivers and emulators are named by path, so loading a rig imports no device library.
"""

from __future__ import annotations

from hilci.hil.faults import BOARD_ONLY
from hilci.hil.faults import KINDS as ALL_FAULTS
from hilci.hil.registry import (
    ACTUATOR,
    MAX_TIMEOUT_S,
    SENSOR,
    DeviceKind,
    DeviceSettings,
    EmulatorSettings,
    register,
)
from hilci.util.settings import int_list, integer, nested, number, settings

FAULTS = tuple(f for f in ALL_FAULTS if f not in BOARD_ONLY)  # a serial device's faults
MAX_RATE_HZ = 10_000  # a 1 kHz IMU is fast; ten times that is a typo
MAX_BUDGET_MS = 60_000


@settings
class StreamSettings(DeviceSettings):
    """A device that talks on its own at a rate: rate, jitter and drop budgets, and when silence is a stall."""

    rate_hz: float = number(10.0, gt=0, le=MAX_RATE_HZ, help="expected message rate")
    rate_tolerance_pct: float = number(2.0, ge=0, le=100, help="measured rate within nominal ± this")
    jitter_p99_ms: float = number(5.0, gt=0, le=MAX_BUDGET_MS, help="budget on |inter-arrival - period|, p99")
    max_drops: int = integer(0, ge=0, help="lost messages allowed in a window")
    stall_timeout_s: float = number(0.5, gt=0, le=MAX_TIMEOUT_S, help="silence longer than this is a stall")


@settings
class ImuEmulatorSettings(EmulatorSettings):
    noise: float = number(0.02, ge=0, le=100, help="accelerometer noise, m/s^2, 1 sigma")
    sysid: int = integer(1, ge=1, le=255, help="MAVLink system id")


@settings
class ImuSettings(StreamSettings):
    rate_hz: float = number(200.0, gt=0, le=MAX_RATE_HZ, help="HIGHRES_IMU rate configured on the autopilot")
    jitter_p99_ms: float = number(1.5, gt=0, le=MAX_BUDGET_MS, help="budget on |inter-arrival - period|, p99")
    gravity: float = number(9.80665, gt=0, le=100, help="|acc| at rest, m/s^2")
    gravity_tolerance: float = number(0.3, gt=0, le=100, help="m/s^2")
    emulator: ImuEmulatorSettings = nested(ImuEmulatorSettings)


@settings
class GnssEmulatorSettings(EmulatorSettings):
    lat: float = number(48.1374, ge=-90, le=90, help="degrees")
    lon: float = number(11.5755, ge=-180, le=180, help="degrees")
    noise_m: float = number(1.5, ge=0, le=100_000, help="position noise, 1 sigma")
    cold_start_s: float = number(3.0, ge=0, le=MAX_TIMEOUT_S, help="no fix for this long after a reboot")


@settings
class GnssSettings(StreamSettings):
    rate_hz: float = number(10.0, gt=0, le=MAX_RATE_HZ, help="GGA epochs per second")
    min_fix_quality: int = integer(1, ge=0, le=8, help="GGA quality: 1 GPS fix, 2 DGPS, 4 RTK fixed")
    min_satellites: int = integer(4, ge=0, le=99)
    emulator: GnssEmulatorSettings = nested(GnssEmulatorSettings)


@settings
class CameraEmulatorSettings(EmulatorSettings):
    noise: float = number(6.0, ge=0, le=255, help="pixel noise, 1 sigma")


@settings
class CameraSettings(StreamSettings):
    rate_hz: float = number(30.0, gt=0, le=MAX_RATE_HZ, help="frames per second")
    rate_tolerance_pct: float = number(3.0, ge=0, le=100)
    jitter_p99_ms: float = number(8.0, gt=0, le=MAX_BUDGET_MS)
    width: int = integer(32, gt=0, le=16384, help="frame width, pixels")
    height: int = integer(32, gt=0, le=16384, help="frame height, pixels")
    emulator: CameraEmulatorSettings = nested(CameraEmulatorSettings)


@settings
class ServoEmulatorSettings(EmulatorSettings):
    speed: float = number(8000.0, gt=0, le=1_000_000, help="ticks per second while moving")


@settings
class ServoSettings(DeviceSettings):
    ids: list = int_list([1], ge=0, le=252, min_len=1, help="bus ids tested (253 and up are reserved); each "
                                                            "missing id costs ~34 ms of packet timeout")
    model_number: int = integer(1060, ge=0, le=65535, help="model number ping must report (1060: XL430-W250)")
    positions: list = int_list([1024, 3072, 2048], ge=0, le=4095, min_len=1,
                               help="goal positions (ticks) for the reach test")
    position_tolerance: float = number(20, ge=0, le=4095, help="ticks")
    reach_s: float = number(1.5, gt=0, le=MAX_TIMEOUT_S, help="each goal reached within this")
    roundtrip_p99_ms: float = number(5.0, gt=0, le=MAX_BUDGET_MS, help="read Present Position, p99")
    estop_ms: float = number(50.0, gt=0, le=MAX_BUDGET_MS, help="torque off -> Moving 0 and Torque Enable 0")
    roundtrip_samples: int = integer(200, ge=1, le=1_000_000)
    emulator: ServoEmulatorSettings = nested(ServoEmulatorSettings)


# hw_error: MAVLink SYS_STATUS health bits (IMU), NMEA fix quality 0 (GNSS), Hardware Error Status (servo);
# a camera's frame stream has no way to say it, so it is refused there.
register(DeviceKind("imu", SENSOR, ImuSettings, "hilci.hil.drivers.imu:ImuDriver",
                    "hilci.hil.emulators.imu:ImuEmulator", "IMU / flight controller, MAVLink 2 (pymavlink)", FAULTS))
register(DeviceKind("gnss", SENSOR, GnssSettings, "hilci.hil.drivers.gnss:GnssDriver",
                    "hilci.hil.emulators.gnss:GnssEmulator", "GNSS receiver, NMEA 0183 (pynmea2)", FAULTS))
register(DeviceKind("servo", ACTUATOR, ServoSettings, "hilci.hil.drivers.servo:ServoDriver",
                    "hilci.hil.emulators.servo:ServoEmulator", "Dynamixel Protocol 2.0 servos (dynamixel-sdk)", FAULTS))
register(DeviceKind("camera", SENSOR, CameraSettings, "hilci.hil.drivers.camera:camera_driver",
                    "hilci.hil.emulators.camera:CameraEmulator", "camera: V4L2 (OpenCV) or the emulator's stream"))
