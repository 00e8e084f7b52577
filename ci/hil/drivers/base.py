"""What every driver shares: open with back-off, errors that name the device and port, a safe state."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import serial

from hilci.hil.devicelog import TrafficLog
from hilci.hil.rig import Device
from hilci.util.retry import Backoff, retry

RESUME_S = 2.0  # after a stall, listen this long more to tell a reboot (the stream restarts) from a stall


class DeviceError(Exception):
    """A device failed (no answer, disconnect, stall, bad data); the message names device, port and fault."""


class Driver:
    """The host side of one device. Subclasses implement `_open`, `_close` and `health`."""

    def __init__(self, device: Device, port: str | None = None):
        self.device = device
        self.port = port or device.port
        self.is_open = False
        self.reconnects = 0
        self.dropouts: list[str] = []  # the messages of errors in which the device dropped out (see `gone`)
        self.traffic = TrafficLog(self.label)  # what the device said (and was told), for the test's log

    @property
    def label(self) -> str:
        return f"{self.device.name} at {self.port}"

    def error(self, what: str) -> DeviceError:
        return DeviceError(f"{self.label}: {what}")

    def gone(self, what: str) -> DeviceError:
        """An error in which the device dropped out (its port gone, silent, rebooted), remembered: a test that
        fails with this message failed because of the rig, not the code (an `infrastructure` failure)."""
        exc = self.error(what)
        self.dropouts.append(str(exc))
        return exc

    def rebooted(self, why: str) -> str:
        """A stream that restarted: `why`, remembered as a drop-out in the words a suite reports it
        ("LABEL: rebooted: WHY")."""
        self.dropouts.append(f"{self.label}: rebooted: {why}")
        return why

    def open(self, timeout: float | None = None) -> Driver:
        """Open the port, retrying with back-off (0.05 s doubling to 0.5 s) until `timeout`: ports come back
        after a disconnect or power cycle a little later than one would like."""
        timeout = self.device.settings.open_timeout_s if timeout is None else timeout

        def attempt() -> None:
            try:
                self._open()
            except (OSError, serial.SerialException, DeviceError):
                self._close()
                raise

        try:
            retry(attempt, on=(OSError, serial.SerialException, DeviceError), timeout_s=timeout,
                  backoff=Backoff(first_s=0.05, max_s=0.5))
        except (OSError, serial.SerialException, DeviceError) as exc:
            raise self.gone(f"cannot open ({exc}) within {timeout:g} s") from None
        self.is_open = True
        return self

    def reopen(self) -> None:
        self.close()
        self.reconnects += 1
        self.open()

    def close(self) -> None:
        self._close()
        self.is_open = False

    def safe(self) -> None:
        """Put the device in its safe state (actuators: torque off). Sensors have none."""

    def health(self, timeout: float) -> dict[str, Any]:
        """Raise DeviceError unless the device answers within `timeout`; return what it said."""
        raise NotImplementedError

    def _open(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Driver:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


class SerialStreamDriver(Driver):
    """A device that streams on a serial port: open flushes what piled up while nobody listened.

    A port opened (or flushed) while the device is sending starts with the tail of a cut message: real
    hardware does this, and so does an emulator caught mid-write. Bad bytes before the first whole message, up
    to one message's length, are that tail (`opened_mid_message`): logged, never counted against the device."""

    def __init__(self, device: Device, port: str | None = None):
        super().__init__(device, port)
        self.serial: serial.Serial | None = None
        self.synced = False  # a whole, valid message has been read since the port was opened
        self.cut = 0  # bytes of a cut message skipped before it

    def _open(self) -> None:
        self.serial = serial.Serial(self.port, self.device.baud, timeout=0.05)
        self.serial.reset_input_buffer()
        self.synced, self.cut = False, 0

    def opened_mid_message(self, size: int, longest: int, now_ns: int) -> bool:
        """Whether `size` bad bytes are the tail of a message cut by the port's opening: before the first
        whole message and, with what was skipped so far, no longer than the protocol's `longest` message."""
        if self.synced or self.cut + size > longest:
            return False
        self.cut += size
        self.traffic.add("..", f"{size} bytes of a message cut by opening the port mid-stream (skipped)", now_ns)
        return True

    def _close(self) -> None:
        if self.serial is not None:
            try:
                self.serial.close()
            except (OSError, serial.SerialException):
                pass
        self.serial = None

    def read_chunk(self) -> bytes:
        """Whatever arrived (up to 50 ms wait); a vanished port raises DeviceError("disconnected")."""
        if self.serial is None:
            raise self.error("not open")
        try:
            waiting = self.serial.in_waiting
            return self.serial.read(max(1, waiting))
        except (OSError, serial.SerialException) as exc:
            self._close()
            raise self.gone(f"disconnected ({exc})") from None

    def alive(self) -> None:
        """A parser saw a whole, valid message: the stall clock of `stream` starts again."""
        self._alive_at = time.monotonic()

    def stream(self, duration_s: float, stall_s: float, what: str) -> Iterator[tuple[bytes, int]]:
        """Chunks with their arrival time (perf_counter_ns) for `duration_s`. Raises DeviceError when the port
        fails, or when no `what` was marked `alive()` for `stall_s`."""
        start = self._alive_at = time.monotonic()
        while time.monotonic() - start < duration_s:
            chunk = self.read_chunk()
            if not chunk:
                if time.monotonic() - self._alive_at > stall_s:
                    raise self.gone(f"stalled: no {what} for {stall_s:g} s")
                continue
            yield chunk, time.perf_counter_ns()

    def check_silence(self, cap: Any, stalled: str, more: Any) -> None:
        """A capture that stalled, or whose window ended in a silence of several periods, may have caught a
        reboot: listen up to RESUME_S more into a copy (`more(copy, seconds)` sets `restart` when the stream
        comes back restarted). A restart makes it a reboot, named so; otherwise `cap` stays as it was."""
        period_s = 1.0 / self.device.settings.rate_hz
        tail_s = (time.perf_counter_ns() - cap.arrivals_ns[-1]) / 1e9 if cap.arrivals_ns else 0.0
        if cap.restart or not (cap.error.endswith(stalled) or tail_s > max(3 * period_s, 0.1)):
            return
        probe = copy.deepcopy(cap)
        probe.error = ""
        started = time.monotonic()
        more(probe, RESUME_S)
        if probe.restart:
            cap.restart = probe.restart
            cap.error = str(self.gone(f"rebooted: {probe.restart} (silent, back after "
                                      f"{time.monotonic() - started + tail_s:.1f} s)"))
