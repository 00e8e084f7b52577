"""Sensors: present, rate within tolerance, jitter p99 within limit, data valid, no drops.

What every streaming sensor shares is written once in `StreamSuite`; each kind's class says how to sample it
(`capture`), how it counts losses (`drops`) and what valid data means for it (`test_data_valid`)."""

import pytest

from hilci.hil import checks
from hilci.results.measurements import measure

pytestmark = pytest.mark.sensor
measures = pytest.mark.measures


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


class StreamSuite:
    """The tests every streaming sensor runs; a subclass gives `sensor` (its kind's fixture), `capture` and
    `drops`."""

    present_count = 5  # messages within present_s
    present_s = 0.5

    def capture(self, driver, seconds, count=0):
        raise NotImplementedError

    def drops(self, driver, cap) -> int:
        return cap.drops

    @measures(("{device}.present", "messages"))
    def test_present(self, sensor, gate):
        cap = self.capture(sensor, self.present_s, self.present_count)
        gate(checks.present(sensor.device, len(cap.arrivals_ns), self.present_count))

    @measures(("{device}.samples", ""), ("{device}.rate", "Hz"))
    def test_rate(self, sensor, gate):
        cap = self.capture(sensor, window(sensor.device))
        gate(checks.enough(cap.arrivals_ns, sensor.device, window(sensor.device)),
             checks.rate(sensor.device, cap.arrivals_ns))

    @measures(("{device}.jitter", "ms"))
    def test_jitter(self, sensor, gate):
        cap = self.capture(sensor, window(sensor.device))
        gate(checks.jitter(sensor.device, cap.arrivals_ns))

    def drop_check(self, driver, cap):
        return checks.count(driver.device, "drops", self.drops(driver, cap), high=driver.device.settings.max_drops)

    @measures(("{device}.drops", ""))
    def test_no_drops(self, sensor, gate):
        cap = self.capture(sensor, window(sensor.device))
        gate(self.drop_check(sensor, cap))


class TestImu(StreamSuite):
    @pytest.fixture
    def sensor(self, imu):
        return imu

    def capture(self, driver, seconds, count=0):
        return _capture(driver, seconds, max_messages=count)

    @measures(("{device}.gravity", "m/s^2"))
    def test_data_valid(self, imu, gate):
        dev = imu.device
        cap = self.capture(imu, window(dev))
        if cap.bad_data:
            pytest.fail(f"{imu.label}: {cap.bad_data} messages with a bad CRC or not MAVLink "
                        f"(of {cap.messages} good)", pytrace=False)
        if cap.unhealthy:
            pytest.fail(f"{imu.label}: SYS_STATUS reports unhealthy sensors: {cap.unhealthy_sensors()}",
                        pytrace=False)
        g = cap.gravity()
        mean_g = sum(g) / len(g)
        gate(checks.around(dev, "gravity", mean_g, "m/s^2", dev.settings.gravity, dev.settings.gravity_tolerance))


class TestGnss(StreamSuite):
    present_count, present_s = 2, 1.0

    @pytest.fixture
    def sensor(self, gnss):
        return gnss

    def capture(self, driver, seconds, count=0):
        return _capture(driver, seconds, max_epochs=count)

    def drops(self, driver, cap) -> int:
        return checks.gaps(driver.device, cap.arrivals_ns)  # NMEA has no sequence numbers

    def drop_check(self, driver, cap):
        return checks.gap_drops(driver.device, cap.arrivals_ns)  # inferred from timing: a late host explains a gap

    @measures(("{device}.fix_quality", ""), ("{device}.satellites", ""))
    def test_data_valid(self, gnss, gate):
        dev = gnss.device
        cap = self.capture(gnss, window(dev))
        if cap.bad_checksum or cap.garbage:
            pytest.fail(f"{gnss.label}: {cap.bad_checksum} sentences with a bad checksum, {cap.garbage} garbage "
                        f"lines (of {cap.sentences} good)", pytrace=False)
        bad = [(lat, lon) for lat, lon in cap.positions if not (-90 <= lat <= 90 and -180 <= lon <= 180)]
        if bad:
            pytest.fail(f"{gnss.label}: position out of range: {bad[0]}", pytrace=False)
        gate(measure(f"{dev.name}.fix_quality", min(cap.fix_quality or [0]), "", low=dev.settings.min_fix_quality,
                     nominal="GGA quality, 1 = GPS fix"),
             measure(f"{dev.name}.satellites", min(cap.satellites or [0]), "", low=dev.settings.min_satellites))


class TestCamera(StreamSuite):
    present_count, present_s = 3, 1.0

    @pytest.fixture
    def sensor(self, camera):
        return camera

    def capture(self, driver, seconds, count=0):
        return _capture(driver, seconds, max_frames=count)

    @measures(("{device}.contrast", ""))
    def test_data_valid(self, camera, gate):
        dev = camera.device
        cap = self.capture(camera, window(dev))
        if cap.bad_checksum or cap.garbage:
            pytest.fail(f"{camera.label}: {cap.bad_checksum} frames with a bad CRC-32, {cap.garbage} bytes of "
                        f"garbage between frames (of {len(cap.frames)} good)", pytrace=False)
        size = (dev.settings.height, dev.settings.width)
        shapes = {f.image.shape for f in cap.frames}
        if shapes != {size}:
            pytest.fail(f"{camera.label}: frame size {sorted(shapes)}, expected {size[0]}x{size[1]}", pytrace=False)
        contrast = float(sum(f.image.std() for f in cap.frames) / len(cap.frames))
        gate(measure(f"{dev.name}.contrast", contrast, "", low=5.0, nominal="std of pixel values"))
