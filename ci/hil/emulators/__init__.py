"""Device emulators, one process each; `EMULATORS` maps a driver name to its emulator class path."""

EMULATORS = {
    "imu": "ci.hil.emulators.imu:ImuEmulator",
    "gnss": "ci.hil.emulators.gnss:GnssEmulator",
    "servo": "ci.hil.emulators.servo:ServoEmulator",
    "camera": "ci.hil.emulators.camera:CameraEmulator",
}
