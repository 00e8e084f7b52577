"""The host's own wake-up latency, measured as cyclictest does: a thread sleeps a fixed period and records how
late it wakes.

On a shared CI host an emulated device's stream arrives late because the computer was busy, not because the
device is slow. Taken while the tests run, this figure lets a reader, and the gate of an emulated rig, tell the
device from the computer.

A sleeper is favoured by the scheduler, so its wake-up latency understates what a busy-polling test process or
an emulator suffers (dynamixel-sdk polls the port; on two cores beside six CPU-bound jobs a test process can
wait 30 ms for the CPU while the sleeper wakes within 8 ms). So the sampler also watches the processes under
test (the pytest process, its xdist workers, the emulators) through the kernel's own run-queue accounting
(`/proc/PID/schedstat`, the time a task was ready to run but not running): `wait_max_ms` is the longest stretch
in which they were held up waiting for a CPU, one after another, sampled every period.

The sampler runs in its own process (`python -m hilci.hil.hostclock SOCKET`), so the tests' own Python work (the
GIL) is not counted as the host's; it answers window queries on a Unix socket and exits when its stdin closes,
so it never outlives the session that started it.

`HILCI_HOST_LATE_MS` adds a fixed lateness to every wake-up: a deterministic late host for tests.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

from hilci.hil import control
from hilci.results.measurements import Measurement, percentile

PERIOD_S = 0.001  # cyclictest's default interval
CAPACITY = 1 << 18  # samples kept for window queries: about 4 minutes at 1 kHz
BUCKET_US = 10  # session histogram resolution
BUCKETS = 20_000  # up to 200 ms; later wake-ups count in the last bucket (the exact max is kept apart)
LATE_ENV = "HILCI_HOST_LATE_MS"
PREFIX = "host.wakeup"
TIME_UNITS_MS = {"ms": 1.0, "s": 1000.0, "us": 0.001}
# A result crosses several scheduling points, each of which a busy host can delay by its worst: a servo round
# trip three (the emulator wakes for the request, wakes after its wire time, the test process runs to read the
# answer), a stream's arrival two. So a timing excess up to this many worst delays is the host's to explain.
SCHEDULING_POINTS = 3


@dataclass(frozen=True)
class HostLatency:
    """How late the host woke a sleeping thread over some window: the figure shown beside timing verdicts."""

    n: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    period_ms: float = PERIOD_S * 1000
    wait_max_ms: float = 0.0  # the longest a process under test waited, ready, for a CPU

    @property
    def worst_ms(self) -> float:
        """The host's worst single delay in this window: a late wake-up, or processes held up for a CPU."""
        return max(self.max_ms, self.wait_max_ms)

    @property
    def explains_ms(self) -> float:
        """The largest timing excess the host alone can account for: its worst delay at each scheduling point."""
        return SCHEDULING_POINTS * self.worst_ms

    def properties(self, prefix: str = PREFIX) -> list[tuple[str, str]]:
        return [(f"{prefix}.n", str(self.n)), (f"{prefix}.p50_ms", _num(self.p50_ms)),
                (f"{prefix}.p99_ms", _num(self.p99_ms)), (f"{prefix}.max_ms", _num(self.max_ms)),
                (f"{prefix}.period_ms", _num(self.period_ms)),
                (f"{prefix}.runqueue_wait_max_ms", _num(self.wait_max_ms))]

    def text(self) -> str:
        return (f"host wake-up latency p50 {self.p50_ms:.3g} ms, p99 {self.p99_ms:.3g} ms, "
                f"max {self.max_ms:.3g} ms over {self.n} wake-ups; processes under test held up waiting for a "
                f"CPU for up to {self.wait_max_ms:.3g} ms")

    @classmethod
    def from_dict(cls, data: dict) -> HostLatency | None:
        if not data.get("n"):
            return None
        return cls(int(data["n"]), float(data["p50_ms"]), float(data["p99_ms"]), float(data["max_ms"]),
                   float(data.get("period_ms", PERIOD_S * 1000)), float(data.get("wait_max_ms", 0.0)))


def _num(x: float) -> str:
    return repr(round(float(x), 4))


SILENCE = "silence_ms"  # Measurement.extra key: the longest silence of a stream whose drops are inferred from gaps


# --- judging a timing result against the host ----------------------------------------------------------
def is_timing(m: Measurement) -> bool:
    """A result the host's own timing can move: a time with an upper limit, a rate over a known window, or a
    count inferred from silences in a stream (`silence_ms`, e.g. NMEA drops)."""
    return ((m.unit in TIME_UNITS_MS and m.high is not None) or (m.unit == "Hz" and "window_s" in m.extra)
            or SILENCE in m.extra)


def excess_ms(m: Measurement) -> float | None:
    """By how many milliseconds of host delay a failed timing measurement missed its limit; None when it is
    not a timing result (a count, a value, a broken stream) and the host cannot explain it.

    Times over a `high` limit count as themselves; a rate under its `low` limit counts as the time the stream
    was missing over its window (`extra['window_s']`); drops inferred from gaps count as the longest silence
    (`extra['silence_ms']`), one host delay per gap."""
    if m.passed:
        return 0.0
    scale = TIME_UNITS_MS.get(m.unit)
    if scale is not None and m.high is not None and m.value > m.high:
        return (m.value - m.high) * scale
    silence = m.extra.get(SILENCE)
    if silence is not None and m.high is not None and m.value > m.high:  # each gap at most this long
        return float(silence)
    window_s = m.extra.get("window_s")
    if m.unit == "Hz" and window_s and m.value > 0:
        if m.low is not None and m.value < m.low:  # messages missing for this long
            return (m.low - m.value) / m.low * float(window_s) * 1000.0
        if m.high is not None and m.value > m.high:  # a late first arrival, then a burst: a shorter span
            return (m.value - m.high) / m.high * float(window_s) * 1000.0
    return None


def judge(m: Measurement, host: HostLatency | None) -> Measurement:
    """On an emulated rig: a timing failure the host's worst delay in the same window explains (a late wake-up
    or processes held up for a CPU, at each of SCHEDULING_POINTS) is inconclusive: the computer, not the device.
    Anything larger (a stall, a halved rate), or not a timing result, stays a failure."""
    if host is None or m.passed:
        return m
    excess = excess_ms(m)
    # a time crosses SCHEDULING_POINTS; a rate's shortfall is time a stream was missing, which one delay explains
    allowance = host.explains_ms if m.unit in TIME_UNITS_MS else host.worst_ms
    if excess is not None and excess <= allowance:
        m.inconclusive = (f"{excess:.3g} ms over the limit, within what the host's own {host.worst_ms:.3g} ms "
                          f"worst delay explains ({host.text()})")
    return m


# --- the sampler (its own process) ---------------------------------------------------------------------
class RunQueueWatch:
    """How long the processes under test have been held up waiting, ready to run, for a CPU, from
    /proc/PID/schedstat (second field: nanoseconds spent on a run queue). Sampled each period: an interval in
    which any watched process waited for more than half of it extends the current wait; one in which none did
    ends it. A request and its answer pass through several processes (the test, an emulator), each of which may
    wait its turn: the wait that delays a round trip is the chain of them, not the longest of one."""

    def __init__(self) -> None:
        self.fds: dict[int, int] = {}
        self.last: dict[int, tuple[int, int]] = {}  # pid -> (sample time, run_delay)
        self.streak = 0

    def add(self, pid: int) -> None:
        if pid in self.fds:
            return
        try:
            self.fds[pid] = os.open(f"/proc/{pid}/schedstat", os.O_RDONLY)
        except OSError:  # no such process, or no schedstat on this kernel: nothing to watch
            pass

    def sample(self, now_ns: int) -> int:
        """The current wait of the processes under test, in ns (0 when one of them just ran freely)."""
        waiting, dt = False, 0
        for pid, fd in list(self.fds.items()):
            try:
                delay = int(os.pread(fd, 128, 0).split()[1])
            except (OSError, IndexError, ValueError):  # the process ended
                os.close(fd)
                del self.fds[pid]
                continue
            prev = self.last.get(pid)
            self.last[pid] = (now_ns, delay)
            if prev is not None and now_ns > prev[0]:
                dt = now_ns - prev[0]
                waiting = waiting or (delay - prev[1]) * 2 >= dt
        self.streak = self.streak + dt if waiting else 0
        return self.streak


class Sampler:
    """Sleeps PERIOD_S again and again and records how late each wake-up was."""

    def __init__(self, period_s: float = PERIOD_S, capacity: int = CAPACITY, extra_late_ms: float = 0.0):
        self.period_ns = int(period_s * 1e9)
        self.capacity = capacity
        self.extra_ns = int(extra_late_ms * 1e6)
        self.woke = array("q", bytes(8 * capacity))
        self.late = array("q", bytes(8 * capacity))
        self.wait = array("q", bytes(8 * capacity))  # the longest current wait for a CPU among watched pids
        self.count = 0
        self.histogram = [0] * BUCKETS
        self.max_ns = 0
        self.wait_max_ns = 0
        self.watched = RunQueueWatch()
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        period_s = self.period_ns / 1e9
        while not self.stop.is_set():
            target = time.perf_counter_ns() + self.period_ns
            time.sleep(period_s)
            woke = time.perf_counter_ns()
            self.record(woke, max(0, woke - target) + self.extra_ns, self.watched.sample(woke))

    def record(self, woke_ns: int, late_ns: int, wait_ns: int = 0) -> None:
        with self.lock:
            i = self.count % self.capacity
            self.woke[i], self.late[i], self.wait[i] = woke_ns, late_ns, wait_ns
            self.count += 1
            self.histogram[min(BUCKETS - 1, late_ns // (BUCKET_US * 1000))] += 1
            self.max_ns = max(self.max_ns, late_ns)
            self.wait_max_ns = max(self.wait_max_ns, wait_ns)

    def window(self, since_ns: int, until_ns: int) -> dict:
        with self.lock:
            n = min(self.count, self.capacity)
            inside = [i for i in range(n) if since_ns <= self.woke[i] <= until_ns]
            late = sorted(self.late[i] / 1e6 for i in inside)
            wait = max((self.wait[i] for i in inside), default=0) / 1e6
        if not late:
            return {"n": 0}
        return {"n": len(late), "p50_ms": percentile(late, 50), "p99_ms": percentile(late, 99),
                "max_ms": late[-1], "period_ms": self.period_ns / 1e6, "wait_max_ms": wait}

    def session(self) -> dict:
        with self.lock:
            counts, total, max_ns = list(self.histogram), self.count, self.max_ns
        if not total:
            return {"n": 0}

        def quantile(q: float) -> float:
            need, seen = q * total, 0
            for bucket, c in enumerate(counts):
                seen += c
                if seen >= need:
                    return min((bucket + 0.5) * BUCKET_US / 1000.0, max_ns / 1e6)
            return max_ns / 1e6

        return {"n": total, "p50_ms": quantile(0.50), "p99_ms": quantile(0.99), "max_ms": max_ns / 1e6,
                "period_ms": self.period_ns / 1e6, "wait_max_ms": self.wait_max_ns / 1e6}

    def answer(self, request: dict) -> dict:
        if "watch" in request:
            self.watched.add(int(request["watch"]))
            return {"n": 0}
        if "since_ns" in request:
            return self.window(int(request["since_ns"]), int(request.get("until_ns") or time.perf_counter_ns()))
        return self.session()


def main(argv: list[str]) -> int:
    """`python -m hilci.hil.hostclock SOCKET [PID...]`: sample until stdin closes; watch the parent and PIDs."""
    path = Path(argv[0])
    sampler = Sampler(extra_late_ms=float(os.environ.get(LATE_ENV) or 0.0))
    for pid in [os.getppid(), *map(int, argv[1:])]:
        sampler.watched.add(pid)
    threading.Thread(target=control.serve, args=(path, sampler.answer, sampler.stop), daemon=True,
                     name="serve").start()
    threading.Thread(target=control.stop_when_parent_leaves, args=(sampler.stop,), daemon=True,
                     name="parent").start()
    deadline = time.monotonic() + 5
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    print(json.dumps({"socket": str(path), "pid": os.getpid()}), flush=True)
    try:
        sampler.run()
    except KeyboardInterrupt:
        pass
    finally:
        sampler.stop.set()
        try:
            path.unlink()
        except OSError:
            pass
    return 0


# --- the client (the plugin's side) --------------------------------------------------------------------
class HostClock:
    """The session's wake-up latency sampler: started by the controller, queried by every worker."""

    def __init__(self, socket_path: Path):
        self.path = Path(socket_path)
        self.proc: subprocess.Popen | None = None

    def start(self, watch: list[int] = (), timeout: float = 10.0) -> HostClock:
        """Start the sampler; it watches this process and the processes in `watch` (emulators)."""
        self.proc = subprocess.Popen([sys.executable, "-m", "hilci.hil.hostclock", str(self.path), *map(str, watch)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready or not self.proc.stdout.readline():
            self.stop()
            raise RuntimeError(f"host latency sampler did not start within {timeout:g} s")
        return self

    def query(self, request: dict, timeout: float = 2.0) -> HostLatency | None:
        """The figure for a window (or the session); None if the sampler cannot be asked."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.path))
                sock.sendall((json.dumps(request) + "\n").encode())
                reply = sock.makefile("r").readline()
            return HostLatency.from_dict(json.loads(reply))
        except (OSError, ValueError):
            return None

    def window(self, since_ns: int, until_ns: int | None = None) -> HostLatency | None:
        return self.query({"since_ns": since_ns, "until_ns": until_ns or time.perf_counter_ns()})

    def session(self) -> HostLatency | None:
        return self.query({})

    def watch(self, pid: int) -> None:
        """Watch one more process under test (an xdist worker)."""
        self.query({"watch": pid})

    def stop(self, timeout: float = 3.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        if proc.stdout:
            proc.stdout.close()
        try:
            self.path.unlink()
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
