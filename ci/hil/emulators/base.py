"""The device side of a serial link: a raw pseudo-terminal at a stable path, faults, and a control socket.

An emulator runs in its own process (`python -m hilci.hil.emulators SPEC`), prints one JSON line with its port and
control socket, and exits when its stdin closes, so it never outlives whoever started it.
"""

from __future__ import annotations

import json
import os
import random
import select
import termios
import threading
import time
import tty
from collections import deque
from pathlib import Path
from typing import Any

from hilci.hil import control
from hilci.hil.faults import KINDS, Fault, parse_fault
from hilci.hil.registry import BAUDS
from hilci.results.measurements import Stats, intervals_ms, rate_hz

_SPEEDS = {getattr(termios, f"B{b}"): b for b in BAUDS if hasattr(termios, f"B{b}")}


class PtyLink:
    """A raw pseudo-terminal whose slave is published as a symlink at a stable path, like a by-id name: there while
    the device is plugged in, gone while it is not, and the same path when it comes back."""

    def __init__(self, link: Path):
        self.link = link
        self.master = self.slave = -1
        self.dropped = 0  # writes lost because the reader fell behind (pty buffer full)
        self.open()

    def open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no \n -> \r\n
        os.set_blocking(master, False)
        self.master, self.slave = master, slave
        tmp = self.link.with_name(self.link.name + ".new")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.link)

    def close(self) -> None:
        """Unplugged: the published name goes first, then the pty. The kernel hands a freed /dev/pts number to the
        next pty anyone opens, so a name left behind would lead a client to another process's device."""
        try:
            self.link.unlink()
        except OSError:
            pass
        for fd in (self.master, self.slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self.slave = -1

    def write(self, data: bytes) -> bool:
        """Write without blocking; a message the buffer cannot take is dropped and counted."""
        if self.master < 0:
            return False
        try:
            n = os.write(self.master, data)
        except BlockingIOError:
            self.dropped += 1
            return False
        except OSError:
            return False
        deadline = time.monotonic() + 0.05
        while n < len(data) and time.monotonic() < deadline:  # finish a partial write, briefly
            select.select([], [self.master], [], 0.005)
            try:
                n += os.write(self.master, data[n:])
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return False
        if n < len(data):
            self.dropped += 1
            return False
        return True

    def read(self, timeout: float) -> bytes:
        if self.master < 0:
            time.sleep(timeout)
            return b""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return b""

    def client_baud(self) -> int | None:
        """The baud rate the client set on its end (a pty ignores it, but a real device would not)."""
        if self.slave < 0:
            return None
        try:
            return _SPEEDS.get(termios.tcgetattr(self.slave)[5])
        except (termios.error, OSError):
            return None


class Emulator:
    """Base of every emulator: its link, its faults over time, its stats and its control commands."""

    kind = ""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.name = spec.get("name", self.kind)
        self.params: dict[str, Any] = dict(spec.get("params") or {})
        self.baud = int(spec.get("baud", 115200))
        self.link = PtyLink(Path(spec["link"]))
        self.control_path = Path(spec["link"] + ".ctl")
        self.rng = random.Random(self.params.get("seed", 0))
        self.stop = threading.Event()
        self.lock = threading.RLock()  # a turn (service_events) holds it while reset()/recover() may ask active()
        self.faults: list[tuple[Fault, float, float | None]] = []  # (fault, start, end) in monotonic seconds
        self.events: list[tuple[Fault, float]] = []  # one-shot faults (disconnect, reboot) and when they fire
        self.down_until = 0.0  # silent until then (rebooting)
        self.link_down_until = 0.0  # the pty is gone until then (disconnected)
        self.restore_pending = False
        self.sent_ns: deque[int] = deque(maxlen=200_000)
        self.counters = {"sent": 0, "corrupted": 0, "garbage": 0, "disconnects": 0, "reboots": 0,
                         "baud_mismatch": 0}
        self._baud_checked = 0.0
        self._baud_ok = True
        self.allowed_faults = tuple(spec.get("allowed_faults") or KINDS)
        for fault in spec.get("faults") or ():
            self.inject(self.parse(fault))

    def parse(self, item: Any) -> Fault:
        """A fault for this device (the one parser, `hilci.hil.faults`); one the protocol cannot say is refused."""
        return parse_fault(item, file=self.name, device_kind=self.kind, allowed=self.allowed_faults)

    # --- faults -------------------------------------------------------------------------------------
    def inject(self, fault: Fault) -> None:
        now = time.monotonic()
        start = now + fault.after_s
        with self.lock:
            if fault.kind in ("disconnect", "reboot"):
                self.events.append((fault, start))
            else:
                end = start + fault.duration_s if fault.duration_s is not None else None
                self.faults.append((fault, start, end))

    def clear(self) -> None:
        """The test's faults are over: the device is restored (link back, outage ended, power-on faults gone)
        by the run thread at its next turn, so that the next test starts on a healthy device."""
        with self.lock:
            self.faults.clear()
            self.events.clear()
            self.restore_pending = True

    def active(self, kind: str) -> Fault | None:
        now = time.monotonic()
        with self.lock:
            for fault, start, end in self.faults:
                if fault.kind == kind and start <= now and (end is None or now < end):
                    return fault
        return None

    def growth(self, kind: str) -> float:
        """A slow fault's size now: its `ramp` times the seconds since it started (0 when not active)."""
        now = time.monotonic()
        with self.lock:
            for fault, start, end in self.faults:
                if fault.kind == kind and start <= now and (end is None or now < end):
                    return fault.ramp * (now - start)
        return 0.0

    def leak(self) -> None:
        """The `leak` fault: memory held and touched (so it is resident) in step with its growth."""
        held: list[bytes] = []
        size = 0
        while not self.stop.wait(0.05):
            want = int(self.growth("leak") * 1e6)
            if want < size:  # cleared: given back
                held, size = [], 0
            while size < want:
                chunk = min(want - size, 4_000_000)
                held.append(b"\x5a" * chunk)
                size += chunk

    def hit(self, fault: Fault | None) -> bool:
        return fault is not None and self.rng.random() < fault.fraction

    def service_events(self) -> None:
        """Fire due one-shot faults (a disconnect closes the pty and publishes a new one after the outage; a
        reboot goes silent, then restarts), bring a disconnected link back, and apply a pending restore.

        All under the lock: a `clear` (the emulated switch's on) comes before this turn, and cancels what was
        due, or after it, and is applied at the next; never in between, where an off taken before the on would
        fire after it had returned."""
        with self.lock:
            now = time.monotonic()
            due = [(f, t) for f, t in self.events if t <= now]
            self.events = [(f, t) for f, t in self.events if t > now]
            restore, self.restore_pending = self.restore_pending, False
            for fault, _ in due:
                outage = fault.duration_s if fault.duration_s is not None else (
                    1.0 if fault.kind == "disconnect" else 0.5)
                if fault.kind == "disconnect":
                    self.counters["disconnects"] += 1
                    self.link.close()
                    self.link_down_until = now + outage
                else:
                    self.counters["reboots"] += 1
                    self.down_until = now + outage
                    self.reset()
            if restore:
                self.down_until = self.link_down_until = 0.0
            if self.link.master < 0 and time.monotonic() >= self.link_down_until:
                self.link.open()
                self.reset()
            if restore:
                self.recover()

    def silent(self) -> bool:
        """True while the device would say nothing: stalled, rebooting, or the client's baud is wrong."""
        if time.monotonic() < self.down_until or self.link.master < 0 or self.active("stall"):
            return True
        now = time.monotonic()
        if now - self._baud_checked > 0.2:
            self._baud_checked = now
            self._baud_ok = self.link.client_baud() == self.baud
            if not self._baud_ok:
                self.counters["baud_mismatch"] += 1
        return not self._baud_ok

    def garbage(self) -> bytes:
        return bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(8, 40)))

    # --- to override --------------------------------------------------------------------------------
    def reset(self) -> None:
        """Power-on state (after a reboot or reconnect)."""

    def recover(self) -> None:
        """Back to a healthy device after a test's faults end (e.g. a fix that a cold start would lose)."""

    def run(self) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return {}

    # --- control ------------------------------------------------------------------------------------
    def stats(self, since_ns: int = 0, until_ns: int = 0) -> dict[str, Any]:
        times = [t for t in list(self.sent_ns) if t >= since_ns and (not until_ns or t <= until_ns)]
        out: dict[str, Any] = {**self.counters, "dropped": self.link.dropped, "n": len(times)}
        if len(times) > 2:
            st = Stats.of(intervals_ms(times))
            out.update(rate_hz=rate_hz(times), interval_p50_ms=st.p50,
                       interval_p99_ms=st.p99, interval_max_ms=st.max)
        return out

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd.get("cmd")
        if op == "fault":
            fault = self.parse({k: v for k, v in cmd.items() if k != "cmd"})
            self.inject(fault)
            return {"ok": True, "fault": fault.to_dict()}
        if op == "clear":
            self.clear()
            return {"ok": True}
        if op == "stats":
            return {"ok": True, **self.stats(int(cmd.get("since_ns", 0)), int(cmd.get("until_ns", 0)))}
        if op == "state":
            return {"ok": True, **self.state()}
        if op == "stop":
            self.stop.set()
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {op!r} (fault, clear, stats, state, stop)"}

    def main(self) -> int:
        threading.Thread(target=control.serve, args=(self.control_path, self.handle, self.stop), daemon=True,
                         name="control").start()
        threading.Thread(target=control.stop_when_parent_leaves, args=(self.stop,), daemon=True,
                         name="parent").start()
        threading.Thread(target=self.leak, daemon=True, name="leak").start()
        print(json.dumps({"name": self.name, "kind": self.kind, "port": str(self.link.link),
                          "tty": os.ttyname(self.link.slave), "control": str(self.control_path),
                          "pid": os.getpid()}), flush=True)
        try:
            self.run()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop.set()
            self.link.close()
            try:
                self.control_path.unlink()
            except OSError:
                pass
        return 0


class StreamEmulator(Emulator):
    """A device that talks on its own at a rate: paces messages, adds timing noise, applies faults."""

    default_rate_hz = 10.0

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        self.rate_hz = float(self.params.get("rate_hz", self.default_rate_hz))
        self.jitter_s = float(self.params.get("jitter_ms", 0.05)) / 1000.0
        self.resync = False

    def message(self) -> bytes:
        raise NotImplementedError

    def corrupt(self, data: bytes) -> bytes:
        """The message with a wrong checksum (protocol-specific)."""
        return data[:-1] + bytes([data[-1] ^ 0x5A])

    def with_garbage(self, data: bytes) -> bytes:
        return self.garbage() + data

    def recover(self) -> None:
        self.resync = True

    def run(self) -> None:
        next_t = time.perf_counter()
        while not self.stop.is_set():
            self.service_events()
            if self.resync:  # a restored stream starts its schedule afresh, not where a fault left it
                self.resync, next_t = False, time.perf_counter()
            drop = self.active("rate_drop")
            rate = (drop.rate_hz or self.rate_hz / 2) if drop else self.rate_hz
            rate *= max(0.05, 1.0 - self.growth("drift") / 100.0)  # drift: the rate sags by `ramp` % a second
            period = 1.0 / rate
            noise = max(-3 * self.jitter_s, min(3 * self.jitter_s, self.rng.gauss(0.0, self.jitter_s)))
            delay = next_t + noise - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            next_t += period
            now = time.perf_counter()
            if now - next_t > 5 * period:  # after a stall or outage, resume the schedule from now
                next_t = now + period
            if self.silent():
                continue
            data = self.message()
            if self.hit(self.active("corrupt")):
                data = self.corrupt(data)
                self.counters["corrupted"] += 1
            if self.hit(self.active("garbage")):
                data = self.with_garbage(data)
                self.counters["garbage"] += 1
            if self.link.write(data):
                self.sent_ns.append(time.perf_counter_ns())
                self.counters["sent"] += 1
