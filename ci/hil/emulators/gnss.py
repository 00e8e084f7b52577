"""GNSS receiver emulator: NMEA 0183 GGA and RMC at a rate, a fix with metre-level noise."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pynmea2

from hilci.hil.emulators.base import StreamEmulator


def _deg_min(value: float, lat: bool) -> tuple[str, str]:
    hemi = ("N" if value >= 0 else "S") if lat else ("E" if value >= 0 else "W")
    value = abs(value)
    deg = int(value)
    minutes = (value - deg) * 60
    return (f"{deg:02d}{minutes:07.4f}" if lat else f"{deg:03d}{minutes:07.4f}"), hemi


class GnssEmulator(StreamEmulator):
    """A receiver with a fix (quality 1, 9 satellites); after a reboot it has no fix for `cold_start_s`, and
    under `hw_error` (an antenna or RF fault) it reports what a receiver can: fix quality 0, RMC status V."""

    kind = "gnss"
    default_rate_hz = 10.0

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        self.lat = float(self.params.get("lat", 48.1374))
        self.lon = float(self.params.get("lon", 11.5755))
        self.noise_deg = float(self.params.get("noise_m", 1.5)) / 111_000.0
        self.cold_start_s = float(self.params.get("cold_start_s", 3.0))
        self.fix_from = 0.0

    def reset(self) -> None:
        self.fix_from = time.monotonic() + self.cold_start_s

    def recover(self) -> None:
        super().recover()
        self.fix_from = 0.0  # restored: the receiver has its fix again

    def garbage(self) -> bytes:
        """Line noise as a receiver's UART shows it: a line of junk, then the real sentence."""
        junk = "".join(chr(self.rng.randrange(33, 127)) for _ in range(self.rng.randrange(8, 40)))
        return (junk.replace("$", "#") + "\r\n").encode()

    def corrupt(self, data: bytes) -> bytes:
        text = data.decode()
        star = text.rindex("*")
        bad = (int(text[star + 1:star + 3], 16) ^ 0x21) & 0xFF
        return (text[:star + 1] + f"{bad:02X}" + text[star + 3:]).encode()

    def message(self) -> bytes:
        now = dt.datetime.now(dt.timezone.utc)
        hms = now.strftime("%H%M%S") + f".{now.microsecond // 10000:02d}"
        fixed = time.monotonic() >= self.fix_from and not self.active("hw_error")
        lat, lat_h = _deg_min(self.lat + self.rng.gauss(0, self.noise_deg), True)
        lon, lon_h = _deg_min(self.lon + self.rng.gauss(0, self.noise_deg), False)
        gga = pynmea2.GGA("GP", "GGA", (hms, lat, lat_h, lon, lon_h, "1" if fixed else "0", "09" if fixed else "00",
                                        "0.9", "519.5", "M", "47.0", "M", "", ""))
        rmc = pynmea2.RMC("GP", "RMC", (hms, "A" if fixed else "V", lat, lat_h, lon, lon_h, "0.02", "0.0",
                                        now.strftime("%d%m%y"), "", ""))
        # corrupt/garbage apply to the last sentence of the epoch; the first goes out as is
        return (str(gga) + "\r\n").encode() + (str(rmc) + "\r\n").encode()

    def with_garbage(self, data: bytes) -> bytes:
        return self.garbage() + data
