"""Sensors: present, rate within tolerance, jitter p99 within limit, data valid, no drops."""

import pytest

from ci.hil import checks
from ci.measurements import measure

pytestmark = pytest.mark.sensor


def window(device) -> float:
    """The sample window: the device's `window_s`, else the rig's `sensor_window_s`."""
    return device.settings.window_s


def _capture(driver, seconds, **kw):
    """A capture that ended early (stall, disconnect, reboot) or saw the device restart fails the test, naming
    what happened: a reboot is a reboot, not a low rate."""
    cap = driver.capture(seconds, **kw)
    if cap.error:
        pytest.fail(cap.error, pytrace=False)
    if cap.restart:
        pytest.fail(f"{driver.label}: rebooted: {cap.restart}", pytrace=False)
    return cap


class TestImu:
    def test_present(self, imu, gate):
        cap = _capture(imu, 0.5, max_messages=5)
        gate(checks.present(imu.device, len(cap.arrivals_ns), 5))

    def test_rate(self, imu, gate):
        cap = _capture(imu, window(imu.device))
        gate(checks.enough(cap.arrivals_ns, imu.device, window(imu.device)), checks.rate(imu.device, cap.arrivals_ns))

    def test_jitter(self, imu, gate):
        cap = _capture(imu, window(imu.device))
        gate(checks.jitter(imu.device, cap.arrivals_ns))

    def test_data_valid(self, imu, gate):
        dev = imu.device
        cap = _capture(imu, window(dev))
        if cap.bad_data:
            pytest.fail(f"{imu.label}: {cap.bad_data} messages with a bad CRC or not MAVLink "
                        f"(of {cap.messages} good)", pytrace=False)
        if cap.unhealthy:
            pytest.fail(f"{imu.label}: SYS_STATUS reports unhealthy sensors: {cap.unhealthy_sensors()}",
                        pytrace=False)
        g = cap.gravity()
        mean_g = sum(g) / len(g)
        gate(checks.around(dev, "gravity", mean_g, "m/s^2", dev.settings.gravity, dev.settings.gravity_tolerance))

    def test_no_drops(self, imu, gate):
        cap = _capture(imu, window(imu.device))
        gate(checks.count(imu.device, "drops", cap.drops, high=imu.device.settings.max_drops))


class TestGnss:
    def test_present(self, gnss, gate):
        cap = _capture(gnss, 1.0, max_epochs=2)
        gate(checks.present(gnss.device, len(cap.arrivals_ns), 2))

    def test_rate(self, gnss, gate):
        cap = _capture(gnss, window(gnss.device))
        gate(checks.enough(cap.arrivals_ns, gnss.device, window(gnss.device)),
             checks.rate(gnss.device, cap.arrivals_ns))

    def test_jitter(self, gnss, gate):
        cap = _capture(gnss, window(gnss.device))
        gate(checks.jitter(gnss.device, cap.arrivals_ns))

    def test_data_valid(self, gnss, gate):
        dev = gnss.device
        cap = _capture(gnss, window(dev))
        if cap.bad_checksum or cap.garbage:
            pytest.fail(f"{gnss.label}: {cap.bad_checksum} sentences with a bad checksum, {cap.garbage} garbage "
                        f"lines (of {cap.sentences} good)", pytrace=False)
        bad = [(lat, lon) for lat, lon in cap.positions if not (-90 <= lat <= 90 and -180 <= lon <= 180)]
        if bad:
            pytest.fail(f"{gnss.label}: position out of range: {bad[0]}", pytrace=False)
        gate(measure(f"{dev.name}.fix_quality", min(cap.fix_quality or [0]), "", low=dev.settings.min_fix_quality,
                            nominal="GGA quality, 1 = GPS fix"),
             measure(f"{dev.name}.satellites", min(cap.satellites or [0]), "", low=dev.settings.min_satellites))

    def test_no_drops(self, gnss, gate):
        cap = _capture(gnss, window(gnss.device))
        gate(checks.count(gnss.device, "drops", checks.gaps(gnss.device, cap.arrivals_ns),
                          high=gnss.device.settings.max_drops))


class TestCamera:
    def test_present(self, camera, gate):
        cap = _capture(camera, 1.0, max_frames=3)
        gate(checks.present(camera.device, len(cap.frames), 3))

    def test_rate(self, camera, gate):
        cap = _capture(camera, window(camera.device))
        gate(checks.enough(cap.arrivals_ns, camera.device, window(camera.device)),
             checks.rate(camera.device, cap.arrivals_ns))

    def test_jitter(self, camera, gate):
        cap = _capture(camera, window(camera.device))
        gate(checks.jitter(camera.device, cap.arrivals_ns))

    def test_data_valid(self, camera, gate):
        dev = camera.device
        cap = _capture(camera, window(dev))
        if cap.bad_checksum or cap.garbage:
            pytest.fail(f"{camera.label}: {cap.bad_checksum} frames with a bad CRC-32, {cap.garbage} bytes of "
                        f"garbage between frames (of {len(cap.frames)} good)", pytrace=False)
        shapes = {f.image.shape for f in cap.frames}
        if shapes != {(int(dev.settings.height), int(dev.settings.width))}:
            pytest.fail(f"{camera.label}: frame size {sorted(shapes)}, expected {int(dev.settings.height)}x{int(dev.settings.width)}",
                        pytrace=False)
        contrast = float(sum(f.image.std() for f in cap.frames) / len(cap.frames))
        gate(measure(f"{dev.name}.contrast", contrast, "", low=5.0, nominal="std of pixel values"))

    def test_no_drops(self, camera, gate):
        cap = _capture(camera, window(camera.device))
        gate(checks.count(camera.device, "drops", cap.drops, high=camera.device.settings.max_drops))
