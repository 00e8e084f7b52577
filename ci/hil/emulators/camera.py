"""Camera emulator: frames at a rate over a pty, each with a header and a CRC-32, as a frame source would send."""

from __future__ import annotations

import struct
import time
import zlib
from typing import Any

from hilci.hil.emulators.base import StreamEmulator
from hilci.hil.frames import FrameSource

MAGIC = b"HCAM"
HEADER = struct.Struct("<4sIQHHBI")  # magic, seq, capture time (ns, monotonic), height, width, label, crc32


class CameraEmulator(StreamEmulator):
    """Digits images scaled to the configured size with noise; the sequence number restarts on reboot."""

    kind = "camera"
    default_rate_hz = 30.0

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        self.source = FrameSource(int(self.params.get("height", 32)), int(self.params.get("width", 32)),
                                  float(self.params.get("noise", 6.0)), int(self.params.get("seed", 0)))
        self.seq = 0

    def reset(self) -> None:
        self.seq = 0

    def message(self) -> bytes:
        frame, label = self.source.next()
        payload = frame.tobytes()
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        head = HEADER.pack(MAGIC, self.seq, time.perf_counter_ns(), frame.shape[0], frame.shape[1], label,
                           zlib.crc32(payload))
        return head + payload

    def corrupt(self, data: bytes) -> bytes:
        return data[:HEADER.size - 4] + bytes(b ^ 0xFF for b in data[HEADER.size - 4:HEADER.size]) + data[HEADER.size:]
