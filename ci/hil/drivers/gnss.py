"""GNSS receiver driver: NMEA 0183 GGA and RMC through pynmea2, with checksum and garbage counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pynmea2

from hilci.hil.drivers.base import DeviceError, SerialStreamDriver

NMEA_MAX_CHARS = 82  # NMEA 0183's longest sentence, '$' to CR LF


@dataclass
class GnssCapture:
    """Epochs (one GGA each) with arrival times, fix data, and what was wrong on the wire."""

    arrivals_ns: list[int] = field(default_factory=list)
    fix_quality: list[int] = field(default_factory=list)
    satellites: list[int] = field(default_factory=list)
    positions: list[tuple[float, float]] = field(default_factory=list)
    rmc_status: list[str] = field(default_factory=list)
    sentences: int = 0
    bad_checksum: int = 0
    garbage: int = 0  # lines that are no NMEA sentence
    restart: str = ""  # how a restart showed: a silence, then the fix lost (NMEA has no sequence numbers)
    error: str = ""


class GnssDriver(SerialStreamDriver):
    """Reads lines; a GGA marks an epoch. A silence longer than `stall_timeout_s` is a stall."""

    def _open(self) -> None:
        super()._open()
        self.pending = b""

    def capture(self, duration_s: float, *, max_epochs: int = 0) -> GnssCapture:
        cap = GnssCapture()
        stall = self._read(cap, duration_s, max_epochs)
        self.check_silence(cap, f"stalled: no NMEA sentence for {stall:g} s",
                           lambda c, s: self._read(c, s, len(c.arrivals_ns) + 2))
        return cap

    def _read(self, cap: GnssCapture, duration_s: float, max_epochs: int) -> float:
        stall = max(self.device.settings.stall_timeout_s, 2.5 / self.device.settings.rate_hz)
        try:
            for chunk, now_ns in self.stream(duration_s, stall, "NMEA sentence"):
                self.pending += chunk
                *lines, self.pending = self.pending.split(b"\n")
                for raw in lines:
                    line = raw.decode("ascii", errors="replace").strip()
                    if line:
                        self.alive()
                        self._parse(cap, line, now_ns)
                if max_epochs and len(cap.arrivals_ns) >= max_epochs:
                    break
        except DeviceError as exc:
            cap.error = str(exc)
        return stall

    def _parse(self, cap: GnssCapture, line: str, now_ns: int) -> None:
        if not line.startswith("$"):
            self._bad(cap, "garbage", f"garbage: {line!r}", line, now_ns)
            return
        try:
            msg = pynmea2.parse(line, check=True)
        except pynmea2.ChecksumError:  # a ParseError too: catch it first
            self._bad(cap, "bad_checksum", f"bad checksum: {line}", line, now_ns)
            return
        except pynmea2.ParseError:
            self._bad(cap, "garbage", f"unparsable: {line!r}", line, now_ns)
            return
        self.traffic.add("rx", line, now_ns)
        self.synced = True
        cap.sentences += 1
        if isinstance(msg, pynmea2.GGA):
            quality = int(msg.gps_qual or 0)
            gap_s = (now_ns - cap.arrivals_ns[-1]) / 1e9 if cap.arrivals_ns else 0.0
            if (cap.fix_quality and cap.fix_quality[-1] > 0 and quality == 0 and not cap.restart
                    and gap_s > 2.5 / self.device.settings.rate_hz):
                cap.restart = self.rebooted(f"silent {gap_s:.1f} s, then no fix (quality {cap.fix_quality[-1]} -> 0): "
                                           "a cold start")
            cap.arrivals_ns.append(now_ns)
            cap.fix_quality.append(int(msg.gps_qual or 0))
            cap.satellites.append(int(msg.num_sats or 0))
            if msg.gps_qual:
                cap.positions.append((msg.latitude, msg.longitude))
        elif isinstance(msg, pynmea2.RMC):
            cap.rmc_status.append(msg.status or "")

    def _bad(self, cap: GnssCapture, counter: str, note: str, line: str, now_ns: int) -> None:
        """Count a bad line against the receiver, unless it is the cut first line of a port opened mid-sentence."""
        if self.opened_mid_message(len(line), NMEA_MAX_CHARS, now_ns):
            return
        setattr(cap, counter, getattr(cap, counter) + 1)
        self.traffic.add("!!", note, now_ns)

    def health(self, timeout: float) -> dict[str, Any]:
        cap = self.capture(timeout, max_epochs=1)
        if not cap.arrivals_ns:
            raise self.gone(f"did not answer within {timeout:g} s")
        return {"fix_quality": cap.fix_quality[-1]}
