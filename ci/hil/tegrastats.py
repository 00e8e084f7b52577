"""The Jetson's `tegrastats` read by our own parser (jetson-stats is AGPL-3.0 and needs its root service): one
`Sample` per line, read token by token, unknown tokens skipped.

A line is `[MM-DD-YYYY HH:MM:SS] RAM U/TMB (lfb NxSMB) SWAP ... CPU [L%@F,...|off] [EMC_FREQ L%@F] GR3D_FREQ L%[@F|
@[F,F]] NAME@TEMPC ... RAIL NmW/NmW ...`: JetPack 6 prints `GR3D_FREQ 0%` without the GPU clock, JetPack 5 on Orin
`GR3D_FREQ 0%@[305,0]` (one clock per GPC), older releases `GR3D_FREQ 0%@76` and no date. A line with none of RAM,
GR3D_FREQ or a temperature is not tegrastats's: `TegrastatsError`, one line that quotes it. The reader runs
`tegrastats --interval MS` in a subprocess and never blocks its caller: samples and the first problem are kept.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field

from hilci.util.processes import terminate

_TEMP = re.compile(r"^([A-Za-z][\w.-]*)@(-?\d+(?:\.\d+)?)C$")
_RAIL = re.compile(r"^(\d+)mW/(\d+)mW$")
_MB = re.compile(r"^(\d+)/(\d+)MB$")
_LOAD = re.compile(r"^(\d+)%(?:@(?:\[([\d,]+)\]|(\d+)))?$")
_DATE = re.compile(r"^\d\d-\d\d-\d{4}$")
_TIME = re.compile(r"^\d\d:\d\d:\d\d$")
MAX_QUOTE = 120


class TegrastatsError(ValueError):
    """tegrastats missing, or a line it printed that is not one of its own; the message is one line."""


@dataclass
class Sample:
    """One tegrastats line: memory in MB, loads in %, clocks in MHz, temperatures in °C, rails in mW."""

    t: float = 0.0  # monotonic seconds when it was read
    ram_used_mb: float | None = None
    ram_total_mb: float | None = None
    cpu_load: list[float] = field(default_factory=list)  # online cores only
    gpu_load_pct: float | None = None
    gpu_mhz: float | None = None  # the highest GPC clock; None where tegrastats prints none (JetPack 6)
    temps: dict[str, float] = field(default_factory=dict)
    power_mw: dict[str, float] = field(default_factory=dict)

    @property
    def hottest(self) -> tuple[str, float] | None:
        return max(self.temps.items(), key=lambda kv: kv[1]) if self.temps else None


def _quote(line: str) -> str:
    text = line.strip()
    return repr(text if len(text) <= MAX_QUOTE else text[:MAX_QUOTE] + "...")


def parse_line(line: str, t: float = 0.0) -> Sample:
    """One line of tegrastats output as a Sample; TegrastatsError naming the line when it is not one."""
    tokens = line.split()
    sample = Sample(t=t)
    known = False
    i = 0
    try:
        while i < len(tokens):
            tok = tokens[i]
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            if _DATE.match(tok) or _TIME.match(tok):
                pass
            elif tok == "RAM":
                m = _MB.match(nxt)
                if not m:
                    raise TegrastatsError(f"RAM {nxt!r}: expected USED/TOTALMB")
                sample.ram_used_mb, sample.ram_total_mb = float(m[1]), float(m[2])
                known, i = True, i + 1
            elif tok == "CPU" and nxt.startswith("["):
                cores = nxt.split("]")[0].strip("[").split(",")
                sample.cpu_load = [float(c.split("%")[0]) for c in cores if c and c != "off"]
                i += 1
            elif tok == "GR3D_FREQ":
                m = _LOAD.match(nxt)
                if not m:
                    raise TegrastatsError(f"GR3D_FREQ {nxt!r}: expected LOAD% with an optional @MHz or @[MHz,...]")
                sample.gpu_load_pct = float(m[1])
                clocks = [float(c) for c in (m[2] or m[3] or "").split(",") if c]
                sample.gpu_mhz = max(clocks) if clocks else None
                known, i = True, i + 1
            elif _RAIL.match(nxt) and re.match(r"^[A-Z][A-Z0-9_]*$", tok):
                sample.power_mw[tok] = float(_RAIL.match(nxt)[1])
                i += 1
            else:
                m = _TEMP.match(tok)
                if m:
                    value = float(m[2])
                    if value > -200:  # a sensor that is off reads -256C
                        sample.temps[m[1]] = value
                    known = True
            i += 1
    except TegrastatsError as exc:
        raise TegrastatsError(f"tegrastats: {exc} in line {_quote(line)}") from None
    if not known:
        raise TegrastatsError(f"tegrastats: not a tegrastats line (no RAM, GR3D_FREQ or temperature): {_quote(line)}")
    return sample


class Reader:
    """`CMD --interval MS` read line by line in a thread: `samples` grow, `problem` holds the first bad line or
    why it could not start; `stop()` ends the process within its timeout."""

    def __init__(self, cmd: list[str], interval_ms: int = 1000):
        self.cmd = list(cmd)
        self.interval_ms = interval_ms
        self.samples: list[Sample] = []
        self.problem = ""
        self.bad_lines = 0
        self.proc: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> Reader:
        exe = self.cmd[0] if self.cmd else ""
        if not exe or (shutil.which(exe) is None):
            self.problem = (f"tegrastats: {exe or 'no command'} not found on PATH (JetPack's tegrastats, or the "
                            "rig's `soak.tegrastats` command): GPU clock and temperature not measured")
            return self
        try:
            self.proc = subprocess.Popen([*self.cmd, "--interval", str(self.interval_ms)], stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
                                         start_new_session=True)
        except OSError as exc:
            self.problem = f"tegrastats: {exe} could not start: {exc.strerror}"
            return self
        self.thread = threading.Thread(target=self._read, name="tegrastats", daemon=True)
        self.thread.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            if not line.strip():
                continue
            try:
                self.samples.append(parse_line(line, time.monotonic()))
            except TegrastatsError as exc:
                self.bad_lines += 1
                self.problem = self.problem or str(exc)

    def stop(self, timeout: float = 3.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            terminate(self.proc, timeout)
        elif not self.samples and not self.problem:
            self.problem = f"tegrastats: {self.cmd[0]} exited with {self.proc.returncode} before printing a line"
        if self.thread is not None:
            self.thread.join(timeout)
