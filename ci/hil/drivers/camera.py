"""Camera driver: V4L2 through OpenCV on a Jetson (`/dev/video*`), the emulator's framed stream otherwise."""

from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hilci.hil.drivers.base import DeviceError, Driver, SerialStreamDriver
from hilci.util.extras import require

MAGIC = b"HCAM"
HEADER = struct.Struct("<4sIQHHBI")  # same layout as hilci.hil.emulators.camera


@dataclass
class Frame:
    seq: int
    arrival_ns: int
    image: np.ndarray


@dataclass
class CameraCapture:
    frames: list[Frame] = field(default_factory=list)
    bad_checksum: int = 0
    garbage: int = 0  # bytes skipped to find the next frame header
    drops: int = 0  # frame sequence gaps
    restarts: int = 0  # sequence went backwards (device restarted)
    restart: str = ""  # how the first restart showed
    error: str = ""

    @property
    def arrivals_ns(self) -> list[int]:
        return [f.arrival_ns for f in self.frames]


class _CameraApi:
    """Capture and health on top of a `frames(cap, duration_s, max_frames)` source."""

    def capture(self, duration_s: float, max_frames: int = 0) -> CameraCapture:
        cap = CameraCapture()
        self.frames(cap, duration_s, max_frames)
        return cap

    def health(self, timeout: float) -> dict[str, Any]:
        cap = self.capture(timeout, 1)
        if not cap.frames:
            raise self.gone(f"did not answer within {timeout:g} s")
        h, w = cap.frames[0].image.shape[:2]
        return {"height": h, "width": w}


class _StreamCamera(_CameraApi, SerialStreamDriver):
    """The emulator's frame stream: header, CRC-32, payload; resynchronises on the magic after junk."""

    def _open(self) -> None:
        super()._open()
        self.pending = b""
        self.last_seq: int | None = None

    def frames(self, cap: CameraCapture, duration_s: float, max_frames: int = 0) -> None:
        self._read(cap, duration_s, max_frames)
        self.check_silence(cap, f"stalled: no frame for {self.device.settings.stall_timeout_s:g} s",
                           lambda c, s: self._read(c, s, len(c.frames) + 2))

    def _read(self, cap: CameraCapture, duration_s: float, max_frames: int) -> None:
        try:
            for chunk, now_ns in self.stream(duration_s, self.device.settings.stall_timeout_s, "frame"):
                self.pending += chunk
                for frame in self._split(cap, now_ns):
                    self.alive()
                    cap.frames.append(frame)
                if max_frames and len(cap.frames) >= max_frames:
                    return
        except DeviceError as exc:
            cap.error = str(exc)

    def _frame_bytes(self) -> int:
        return HEADER.size + self.device.settings.width * self.device.settings.height

    def _split(self, cap: CameraCapture, now_ns: int):
        while True:
            at = self.pending.find(MAGIC)
            if at < 0:
                keep = len(self.pending) - 3
                if keep > 0:
                    if not self.opened_mid_message(keep, self._frame_bytes(), now_ns):
                        cap.garbage += keep
                        self.traffic.add("!!", f"{keep} bytes without a frame header", now_ns)
                    self.pending = self.pending[keep:]
                return
            if at:
                if not self.opened_mid_message(at, self._frame_bytes(), now_ns):
                    cap.garbage += at
                    self.traffic.add("!!", f"{at} bytes of garbage before a frame header", now_ns)
                self.pending = self.pending[at:]
            if len(self.pending) < HEADER.size:
                return
            _, seq, _, h, w, _, crc = HEADER.unpack_from(self.pending)
            total = HEADER.size + h * w
            if len(self.pending) < total:
                return
            payload = self.pending[HEADER.size:total]
            if zlib.crc32(payload) != crc:
                cap.bad_checksum += 1
                self.traffic.add("!!", f"frame seq={seq} {w}x{h} bad CRC-32 {crc:08x}", now_ns)
                self.pending = self.pending[4:]  # skip this magic; the next frame resynchronises
                continue
            self.pending = self.pending[total:]
            self.synced = True
            self.traffic.add("rx", f"frame seq={seq} {w}x{h} crc={crc:08x}", now_ns)
            if self.last_seq is not None:
                if seq <= self.last_seq:
                    cap.restarts += 1
                    cap.restart = cap.restart or self.rebooted(f"frame counter restarted ({self.last_seq} -> {seq})")
                else:
                    cap.drops += seq - self.last_seq - 1
            self.last_seq = seq
            yield Frame(seq, now_ns, np.frombuffer(payload, np.uint8).reshape(h, w))


class _V4l2Camera(_CameraApi, Driver):
    """A V4L2 camera through OpenCV (opencv-python-headless comes with the `jetson` extra)."""

    def _open(self) -> None:
        cv2 = require("cv2")  # only on a real camera; names the extra when OpenCV is missing

        cap = cv2.VideoCapture(self.port, cv2.CAP_V4L2)
        if not cap.isOpened():
            raise DeviceError("OpenCV could not open the V4L2 device")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(self.device.settings.width))
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(self.device.settings.height))
        cap.set(cv2.CAP_PROP_FPS, float(self.device.settings.rate_hz))
        self.cv, self.cv2, self.seq = cap, cv2, 0

    def _close(self) -> None:
        if getattr(self, "cv", None) is not None:
            self.cv.release()
            self.cv = None

    def frames(self, cap: CameraCapture, duration_s: float, max_frames: int = 0) -> None:
        start = time.monotonic()
        while time.monotonic() - start < duration_s:
            ok, image = self.cv.read()
            if not ok or image is None:
                cap.error = f"{self.label}: no frame (V4L2 read failed)"
                return
            self.seq += 1
            self.traffic.add("rx", f"frame {self.seq} {image.shape[1]}x{image.shape[0]} (V4L2)")
            gray = self.cv2.cvtColor(image, self.cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
            cap.frames.append(Frame(self.seq, time.perf_counter_ns(), gray))
            if max_frames and len(cap.frames) >= max_frames:
                return


def camera_driver(device, port: str | None = None) -> Driver:
    """V4L2 for /dev/video* ports, the emulator's framed stream otherwise; both have `capture` and `health`."""
    target = str(port or device.port)
    return (_V4l2Camera if target.startswith("/dev/video") else _StreamCamera)(device, port)
