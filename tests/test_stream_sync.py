"""A stream opened mid-message: the tail of the cut message is not the device's fault, on a real pseudo-terminal.

Opening (and flushing) a port while a device sends leaves the tail of one message at the start: real sensors do
it, and so does an emulator caught mid-write on a busy host (seen: `TestImu::test_data_valid` failing once in a
parallel run of four emulated rigs). Each stream driver skips up to one message's worth of bad bytes before the
first whole message, and counts everything after it.
"""

from __future__ import annotations

import os
import struct
import zlib

import pynmea2
import pytest
import yaml
from pymavlink.dialects.v20 import common as mavlink

from hilci.hil.drivers import driver_for
from hilci.hil.rig import load_rig

pytestmark = [pytest.mark.emulator]  # what it needs: the fast tier leaves it out

CAMERA_HEADER = struct.Struct("<4sIQHHBI")  # hilci.hil.emulators.camera's layout


def imu_messages(n: int) -> list[bytes]:
    mav = mavlink.MAVLink(None, srcSystem=1, srcComponent=1)
    out = []
    for i in range(n):
        msg = mav.highres_imu_encode(1000 * (i + 1), 0.0, 0.0, -9.81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        out.append(bytes(msg.pack(mav)))
        mav.seq = (mav.seq + 1) % 256
    return out


def gnss_messages(n: int) -> list[bytes]:
    return [(str(pynmea2.GGA("GP", "GGA", (f"1200{i:02d}.00", "4807.038", "N", "01131.000", "E", "1", "08", "0.9",
                                             "545.4", "M", "46.9", "M", "", ""))) + "\r\n").encode()
            for i in range(n)]


def camera_messages(n: int, w: int = 8, h: int = 8) -> list[bytes]:
    out = []
    for i in range(n):
        payload = bytes((i + j) % 256 for j in range(w * h))
        out.append(CAMERA_HEADER.pack(b"HCAM", i, i * 33_000_000, h, w, 0, zlib.crc32(payload)) + payload)
    return out


KINDS = {
    "imu": ({"driver": "imu", "baud": 921600, "rate_hz": 200}, imu_messages,
            lambda d: d.capture(0.5, max_messages=5), lambda c: c.bad_data, lambda c: len(c.arrivals_ns)),
    "gnss": ({"driver": "gnss", "baud": 115200, "rate_hz": 10}, gnss_messages,
             lambda d: d.capture(0.5, max_epochs=5), lambda c: c.garbage + c.bad_checksum, lambda c: c.sentences),
    "camera": ({"driver": "camera", "baud": 4000000, "rate_hz": 30, "width": 8, "height": 8}, camera_messages,
               lambda d: d.capture(0.5, max_frames=5), lambda c: c.garbage + c.bad_checksum, lambda c: len(c.frames)),
}


def capture_after(tmp_path, kind: str, sent: bytes):
    """Open the kind's driver on a real pty, let the 'device' send `sent`, capture; (driver, capture)."""
    settings, _, capture, _, _ = KINDS[kind]
    master, slave = os.openpty()
    port = os.ttyname(slave)
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump({"name": "bench", "emulate": False, "devices": {kind: {**settings, "port": port}}}))
    driver = driver_for(load_rig(rig).devices[kind], port).open()
    try:
        os.write(master, sent)
        return driver, capture(driver)
    finally:
        driver.close()
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_tail_of_a_cut_message_before_the_first_whole_one_is_skipped(tmp_path, kind):
    _, make, _, bad, good = KINDS[kind]
    first, *rest = make(6)
    driver, cap = capture_after(tmp_path, kind, first[len(first) // 2:] + b"".join(rest))  # opened mid-`first`
    assert bad(cap) == 0 and good(cap) == 5
    assert "cut by opening the port mid-stream" in driver.traffic.text()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bad_bytes_after_the_first_whole_message_still_count(tmp_path, kind):
    _, make, _, bad, good = KINDS[kind]
    one, two, *rest = make(6)
    _, cap = capture_after(tmp_path, kind, one + two[len(two) // 2:] + b"".join(rest))  # cut mid-stream
    assert bad(cap) >= 1 and good(cap) == 5


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_more_junk_than_one_message_before_the_first_is_counted(tmp_path, kind):
    _, make, _, bad, good = KINDS[kind]
    junk = b"\x00garbage-not-a-message\n" * 40  # longer than any one message of these protocols here
    _, cap = capture_after(tmp_path, kind, junk + b"".join(make(5)))
    assert bad(cap) >= 1 and good(cap) == 5
