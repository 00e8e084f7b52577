"""Servo driver: Dynamixel Protocol 2.0 through ROBOTIS dynamixel-sdk (PortHandler, PacketHandler)."""

from __future__ import annotations

import termios
import time
from typing import Any

import dynamixel_sdk as dxl
import serial

from hilci.hil.devicelog import hexdump
from hilci.hil.drivers.base import DeviceError, Driver

# X-series control table addresses (e-Manual, "Control Table of RAM Area")
MODEL_NUMBER, TORQUE_ENABLE, HARDWARE_ERROR = 0, 64, 70
GOAL_POSITION, MOVING, PRESENT_POSITION = 116, 122, 132
HW_ERRORS = {0x01: "input voltage", 0x04: "overheating", 0x08: "motor encoder", 0x10: "electrical shock",
             0x20: "overload"}

QUIET_S = 0.02  # a bus that carried nothing this long holds no late status packet (a servo speaks only when asked)
DRAIN_MAX_S = 0.5
LATE_HINT = "it answered, but after the packet timeout: a servo this slow is broken or the bus overloaded"
COMM_HINTS = {dxl.COMM_RX_TIMEOUT: "no answer: stalled, unplugged, rebooting or wrong baud",
              dxl.COMM_RX_CORRUPT: "corrupt reply: bad CRC or garbage on the line"}


def hw_error_text(code: int) -> str:
    names = [name for bit, name in HW_ERRORS.items() if code & bit]
    return ", ".join(names) or f"0x{code:02x}"


class ServoDriver(Driver):
    """One bus of X-series servos; every call checks the comm result and the status error byte."""

    def __init__(self, device, port: str | None = None):
        super().__init__(device, port)
        self.port_handler: dxl.PortHandler | None = None
        self.packet = dxl.PacketHandler(2.0)
        self.torque_touched: set[int] = set()  # ids whose torque we enabled: what the safe state must undo
        self.alerts: set[int] = set()  # ids whose status packets carried the Alert bit (a hardware error)
        self.timeout_retries = 0  # transactions tried again after no answer (emulated rigs on a busy host)
        self.retries = 0  # how many times that happened
        self.late = False  # the last transaction's answer came, after its packet timeout (drained)

    def _open(self) -> None:
        handler = dxl.PortHandler(self.port)
        try:
            ok = handler.openPort() and handler.setBaudRate(int(self.device.baud))
        except Exception as exc:  # the SDK raises serial.SerialException or prints and returns False
            raise DeviceError(str(exc)) from None
        if not ok:
            raise DeviceError(f"dynamixel-sdk could not open the port at {self.device.baud} baud")
        self._log_packets(handler)
        self.port_handler = handler
        self._drain()  # a late answer to the previous user's last request must not answer our first one

    def _drain(self) -> int:
        """Discard late status packets (answers to requests we stopped waiting for) until the line has been
        quiet for QUIET_S, for at most DRAIN_MAX_S: the next answer read is then the answer to the next request.
        What is discarded still shows in the device log. Returns the bytes dropped."""
        handler, dropped = self.port_handler, 0
        start = quiet_since = time.monotonic()
        while time.monotonic() - start < DRAIN_MAX_S:
            waiting = handler.getBytesAvailable()
            if waiting:
                dropped += len(handler.readPort(waiting))
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= QUIET_S:
                break
            else:
                time.sleep(0.002)
        return dropped

    def _log_packets(self, handler: dxl.PortHandler) -> None:
        """Every instruction and status byte through the port goes to the traffic log, in hex."""
        write, read = handler.writePort, handler.readPort

        def write_port(packet):
            self.traffic.add("tx", hexdump(bytes(packet)))
            return write(packet)

        def read_port(length):
            data = read(length)
            if data:
                self.traffic.add("rx", hexdump(bytes(data)))
            return data

        handler.writePort, handler.readPort = write_port, read_port

    def _close(self) -> None:
        if self.port_handler is not None:
            try:
                self.port_handler.closePort()
            except Exception:
                pass
        self.port_handler = None

    def _check(self, dxl_id: int, what: str, result: int, error: int) -> None:
        if result != dxl.COMM_SUCCESS:
            hint = LATE_HINT if result == dxl.COMM_RX_TIMEOUT and self.late else COMM_HINTS.get(result, "")
            fail = self.gone if result == dxl.COMM_RX_TIMEOUT else self.error  # no answer: the servo is silent
            raise fail(f"id {dxl_id}: {what}: {self.packet.getTxRxResult(result)}" + (f" ({hint})" if hint else ""))
        if error & 0x80:
            self.alerts.add(dxl_id)
        if error & 0x7F:
            raise self.error(f"id {dxl_id}: {what}: {self.packet.getRxPacketError(error)}")

    def _port(self) -> dxl.PortHandler:
        if self.port_handler is None:
            self.open()
        return self.port_handler

    def _txrx(self, fn, *args):
        """One SDK transaction; a vanished port becomes a DeviceError saying so. A transaction without an
        answer is tried again `timeout_retries` times (set on emulated rigs, whose emulator a busy host may
        not schedule within the SDK's 34 ms packet timeout); a silent device still fails every try. An answer
        that comes after the timeout is drained, never taken for the answer to the next request."""
        self.late = False
        for attempt in range(self.timeout_retries + 1):
            try:
                out = fn(self._port(), *args)
            except (OSError, serial.SerialException, termios.error) as exc:  # a vanished pty: termios.error too
                self._close()
                self.is_open = False
                raise self.gone(f"disconnected ({exc})") from None
            if out[-2] != dxl.COMM_RX_TIMEOUT:
                return out
            self.late = self._drain() > 0 or self.late  # the unanswered request's answer may still come
            if attempt == self.timeout_retries:
                return out
            self.retries += 1
        return out

    def ping(self, dxl_id: int) -> int:
        model, result, error = self._txrx(self.packet.ping, dxl_id)
        self._check(dxl_id, "ping", result, error)
        return model

    def read(self, dxl_id: int, addr: int, size: int) -> int:
        """An unsigned little-endian register value. An answer of the wrong size is a late answer to an earlier
        request (the bus out of step): a DeviceError saying so, never a wrong value."""
        data, result, error = self._txrx(self.packet.readTxRx, dxl_id, addr, size)
        self._check(dxl_id, f"read address {addr}", result, error)
        if len(data) != size:
            self._drain()
            raise self.error(f"id {dxl_id}: read address {addr}: a {len(data)}-byte answer to a {size}-byte read "
                             "(a late status packet of an earlier request: the bus was out of step)")
        return int.from_bytes(bytes(data), "little")

    def write(self, dxl_id: int, addr: int, size: int, value: int) -> None:
        fn = {1: self.packet.write1ByteTxRx, 2: self.packet.write2ByteTxRx, 4: self.packet.write4ByteTxRx}[size]
        result, error = self._txrx(fn, dxl_id, addr, value)
        self._check(dxl_id, f"write address {addr}", result, error)

    def torque(self, dxl_id: int, on: bool) -> None:
        if on:
            self.torque_touched.add(dxl_id)
        self.write(dxl_id, TORQUE_ENABLE, 1, 1 if on else 0)

    def goal(self, dxl_id: int, position: int) -> None:
        self.write(dxl_id, GOAL_POSITION, 4, position & 0xFFFFFFFF)

    def position(self, dxl_id: int) -> int:
        value = self.read(dxl_id, PRESENT_POSITION, 4)
        return value - (1 << 32) if value >= 0x80000000 else value

    def moving(self, dxl_id: int) -> bool:
        return bool(self.read(dxl_id, MOVING, 1))

    def hardware_error(self, dxl_id: int) -> int:
        return self.read(dxl_id, HARDWARE_ERROR, 1)

    def torque_enabled(self, dxl_id: int) -> bool:
        return bool(self.read(dxl_id, TORQUE_ENABLE, 1))

    def safe(self) -> None:
        """Torque off on every id we enabled (and every configured id), tolerating a dead bus per id."""
        failures = []
        for dxl_id in sorted(self.torque_touched | set(self.device.settings.ids)):
            try:
                self.torque(dxl_id, False)
            except DeviceError as exc:
                failures.append(str(exc))
        if failures:
            raise DeviceError("; ".join(failures))

    def health(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        models = {}
        for dxl_id in self.device.settings.ids:
            while True:
                try:
                    models[dxl_id] = self.ping(dxl_id)
                    break
                except DeviceError:
                    if time.monotonic() > deadline:
                        raise self.gone(f"did not answer within {timeout:g} s (id {dxl_id})") from None
                    time.sleep(0.05)
        return {"models": models}

    def explain(self, exc: DeviceError, dxl_id: int, timeout: float = 1.5) -> str:
        """Why a transaction failed: if the servo answers again with torque off that we had on, it rebooted."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.ping(dxl_id)
                if dxl_id in self.torque_touched and not self.torque_enabled(dxl_id):
                    return str(self.gone(f"id {dxl_id} rebooted mid-test (torque went off; first symptom: {exc})"))
                return str(exc)
            except DeviceError:
                time.sleep(0.05)
        return str(exc)
