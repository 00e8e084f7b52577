"""Servo emulator: Dynamixel Protocol 2.0 over a pty, an X-series control-table subset, float-valued motion."""

from __future__ import annotations

import struct
import time
from typing import Any

from fastcrc import crc16

from hilci.hil.emulators.base import Emulator

HEADER = b"\xff\xff\xfd\x00"
PING, READ, WRITE, REBOOT, STATUS = 0x01, 0x02, 0x03, 0x08, 0x55
ERR_INSTRUCTION, ERR_CRC, ERR_ACCESS = 0x02, 0x03, 0x07
ERR_ALERT = 0x80  # set in every status while Hardware Error Status is non-zero

# X-series control table subset: address -> (size, writable)
MODEL_NUMBER, FIRMWARE, ID, BAUD_RATE, RETURN_DELAY = 0, 6, 7, 8, 9
TORQUE_ENABLE, LED, HARDWARE_ERROR, GOAL_POSITION, MOVING, PRESENT_POSITION = 64, 65, 70, 116, 122, 132
TABLE = {MODEL_NUMBER: (2, False), FIRMWARE: (1, False), ID: (1, False), BAUD_RATE: (1, False),
         RETURN_DELAY: (1, False), TORQUE_ENABLE: (1, True), LED: (1, True), HARDWARE_ERROR: (1, False),
         GOAL_POSITION: (4, True), MOVING: (1, False), PRESENT_POSITION: (4, True)}


def crc(data: bytes) -> int:
    """Dynamixel 2.0 CRC-16: polynomial 0x8005, init 0, no reflection (CRC-16/UMTS)."""
    return crc16.umts(data)


def stuff(body: bytes) -> bytes:
    """Byte stuffing: FF FF FD in the payload becomes FF FF FD FD."""
    return body.replace(b"\xff\xff\xfd", b"\xff\xff\xfd\xfd")


def unstuff(body: bytes) -> bytes:
    return body.replace(b"\xff\xff\xfd\xfd", b"\xff\xff\xfd")


def status_packet(dxl_id: int, error: int, params: bytes = b"") -> bytes:
    body = stuff(bytes([STATUS, error]) + params)
    head = HEADER + bytes([dxl_id]) + struct.pack("<H", len(body) + 2)
    packet = head + body
    return packet + struct.pack("<H", crc(packet))


class Motor:
    """One X-series servo: position moves toward the goal at `speed` ticks/s while torque is on."""

    def __init__(self, dxl_id: int, model: int, speed: float, start: float):
        self.id = dxl_id
        self.model = model
        self.speed = speed
        self.position = start  # a float, or slow motion stalls on rounding
        self.goal = start
        self.torque = 0
        self.led = 0
        self.hw_error = 0
        self.torque_ever = False
        self.stamp = time.monotonic()

    def advance(self) -> None:
        now = time.monotonic()
        dt, self.stamp = now - self.stamp, now
        if self.torque and not self.hw_error:
            step = self.speed * dt
            delta = self.goal - self.position
            self.position = self.goal if abs(delta) <= step else self.position + (step if delta > 0 else -step)

    @property
    def moving(self) -> int:
        return int(bool(self.torque) and not self.hw_error and abs(self.goal - self.position) > 0.5)

    def read(self, addr: int) -> int:
        return {MODEL_NUMBER: self.model, FIRMWARE: 46, ID: self.id, BAUD_RATE: 3, RETURN_DELAY: 0,
                TORQUE_ENABLE: self.torque, LED: self.led, HARDWARE_ERROR: self.hw_error,
                GOAL_POSITION: int(round(self.goal)), MOVING: self.moving,
                PRESENT_POSITION: int(round(self.position)) & 0xFFFFFFFF}[addr]

    def write(self, addr: int, value: int) -> int:
        if addr == TORQUE_ENABLE:
            self.torque = 1 if value else 0
            self.torque_ever = self.torque_ever or bool(value)
            if not self.torque:
                self.goal = self.position  # torque off: stop where it is
        elif addr == LED:
            self.led = value
        elif addr == GOAL_POSITION:
            if value >= 0x80000000:
                value -= 1 << 32
            if not 0 <= value <= 4095:
                return ERR_ACCESS  # outside the position limits
            self.goal = float(value)
        elif addr == PRESENT_POSITION:
            return ERR_ACCESS
        return 0


class ServoEmulator(Emulator):
    """Answers PING, READ, WRITE, REBOOT for its IDs; silent for other IDs, as a real bus is."""

    kind = "servo"

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        ids = self.params.get("ids", [1])
        model = int(self.params.get("model_number", 1060))
        speed = float(self.params.get("speed", 8000.0))  # ticks/s
        self.motors = {int(i): Motor(int(i), model, speed, 2048.0) for i in ids}
        self.buf = b""
        self.served = 0

    def reset(self) -> None:
        for m in self.motors.values():
            m.advance()
            m.torque, m.hw_error, m.goal = 0, 0, m.position

    def recover(self) -> None:
        for m in self.motors.values():  # restored as a REBOOT instruction would: hardware error cleared
            m.hw_error = 0

    def state(self) -> dict[str, Any]:
        for m in self.motors.values():
            m.advance()
        return {"served": self.served, "motors": {str(i): {
            "torque": m.torque, "torque_ever": m.torque_ever, "position": m.position, "goal": m.goal,
            "moving": m.moving, "hw_error": m.hw_error} for i, m in self.motors.items()}}

    def run(self) -> None:
        while not self.stop.is_set():
            self.service_events()
            hw = self.active("hw_error")
            for m in self.motors.values():
                m.advance()
                if hw:
                    m.hw_error = hw.code
            data = self.link.read(0.002)
            if not data:
                continue
            self.buf += data
            hw = self.active("hw_error")  # again: a fault injected while we waited applies to this answer
            for m in self.motors.values():
                if hw:
                    m.hw_error = hw.code
            for packet in self._packets():
                if self.silent():
                    continue
                reply = self._answer(packet)
                if reply is None:
                    continue
                slow = self.active("rate_drop")
                wire = len(reply) * 10.0 / self.baud  # an emulator models its own link speed
                drift = self.growth("drift") / 1000.0  # drift: the reply comes `ramp` ms later every second
                time.sleep(wire + (slow.delay_ms / 1000.0 if slow else 0.0) + drift)
                if self.hit(self.active("corrupt")):
                    reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
                    self.counters["corrupted"] += 1
                if self.hit(self.active("garbage")):
                    reply = self.garbage()
                    self.counters["garbage"] += 1
                if self.link.write(reply):
                    self.served += 1
                    self.sent_ns.append(time.perf_counter_ns())

    def _packets(self):
        """Complete instruction packets from the buffer (CRC checked; junk before a header skipped)."""
        while True:
            start = self.buf.find(HEADER)
            if start < 0:
                self.buf = self.buf[-3:]
                return
            self.buf = self.buf[start:]
            if len(self.buf) < 7:
                return
            length = struct.unpack_from("<H", self.buf, 5)[0]
            total = 7 + length
            if len(self.buf) < total:
                return
            packet, self.buf = self.buf[:total], self.buf[total:]
            if struct.unpack_from("<H", packet, total - 2)[0] != crc(packet[:-2]):
                yield packet[4], None  # CRC error: answered with ERR_CRC
                continue
            yield packet[4], unstuff(packet[7:-2])

    def _answer(self, packet: tuple[int, bytes | None]) -> bytes | None:
        dxl_id, body = packet
        motor = self.motors.get(dxl_id)
        if motor is None:  # not ours (or broadcast): a bus stays silent
            return None
        alert = ERR_ALERT if motor.hw_error else 0
        if body is None:
            return status_packet(dxl_id, ERR_CRC | alert)
        instr, params = body[0], body[1:]
        if instr == PING:
            return status_packet(dxl_id, alert, struct.pack("<HB", motor.model, 46))
        if instr == READ and len(params) == 4:
            addr, size = struct.unpack("<HH", params)
            out = b""
            a = addr
            while a < addr + size:
                if a not in TABLE:
                    out += b"\x00"
                    a += 1
                    continue
                width = TABLE[a][0]
                out += motor.read(a).to_bytes(width, "little")
                a += width
            return status_packet(dxl_id, alert, out[:size])
        if instr == WRITE and len(params) >= 3:
            addr = struct.unpack_from("<H", params)[0]
            data = params[2:]
            if addr not in TABLE or not TABLE[addr][1] or len(data) != TABLE[addr][0]:
                return status_packet(dxl_id, ERR_ACCESS | alert)
            if addr != TORQUE_ENABLE and addr != LED and motor.torque and addr not in (GOAL_POSITION,):
                return status_packet(dxl_id, ERR_ACCESS | alert)
            err = motor.write(addr, int.from_bytes(data, "little"))
            return status_packet(dxl_id, err | alert)
        if instr == REBOOT:
            reply = status_packet(dxl_id, 0)
            motor.torque, motor.hw_error, motor.goal = 0, 0, motor.position
            return reply
        return status_packet(dxl_id, ERR_INSTRUCTION | alert)
