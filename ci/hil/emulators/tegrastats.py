"""A `tegrastats` stand-in for emulated rigs: prints the real line format (an Orin Nano's, DESIGN.md) every
`--interval` ms until stopped, with the board's slow faults: `throttle` (temperatures rise by `ramp` °C/s and
the GPU clock falls to (1 - fraction) of its maximum once `after_s` has passed) and `leak` (RAM used grows by
`ramp` MB/s). `--style jp6` prints `GR3D_FREQ 61%` as JetPack 6 does; the default, JetPack 5's `@[MHz,MHz]`.

    python -m hilci.hil.emulators.tegrastats --interval 100 --fault throttle:ramp=4,after_s=1
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from hilci.hil.faults import Fault, FaultError, parse_fault

BOARD_FAULTS = ("throttle", "leak")
TEMPS = ("cpu", "soc2", "soc0", "gpu", "tj", "soc1")


def line(now: float, t: float, faults: list[Fault], rng: random.Random, max_mhz: int, style: str) -> str:
    ram = 3595.0
    temp = 50.5
    mhz = float(max_mhz)
    for f in faults:
        if t < f.after_s or (f.duration_s is not None and t > f.after_s + f.duration_s):
            continue
        if f.kind == "leak":
            ram += f.ramp * (t - f.after_s)
        elif f.kind == "throttle":
            temp += f.ramp * (t - f.after_s)
            mhz = max_mhz * (1.0 - f.fraction)
    temp = min(temp, 104.0)
    load = rng.randint(55, 99)
    gr3d = f"{load}%" if style == "jp6" else f"{load}%@[{int(mhz)},{int(mhz)}]"
    temps = " ".join(f"{name}@{temp + rng.uniform(-0.6, 0.6):.3f}C" for name in TEMPS)
    cpus = ",".join(f"{rng.randint(5, 100)}%@1728" for _ in range(4)) + ",off,off"
    stamp = time.strftime("%m-%d-%Y %H:%M:%S", time.localtime(now))
    return (f"{stamp} RAM {int(ram)}/7607MB (lfb 1x1MB) SWAP 11/3804MB (cached 0MB) CPU [{cpus}] "
            f"GR3D_FREQ {gr3d} {temps} VDD_IN 5832mW/5852mW VDD_CPU_GPU_CV 1307mW/1327mW VDD_SOC 1468mW/1468mW")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tegrastats (hilci stand-in)", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--interval", type=int, default=1000, metavar="MS")
    p.add_argument("--fault", action="append", default=[], metavar="KIND[:k=v,...]")
    p.add_argument("--max-mhz", type=int, default=625, help="the GPU's maximum clock (Orin Nano: 625)")
    p.add_argument("--style", choices=("jp5", "jp6"), default="jp5")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        faults = [parse_fault(text, file="tegrastats --fault", device_kind="Jetson", allowed=BOARD_FAULTS)
                  for text in args.fault]
    except FaultError as exc:
        print(f"tegrastats: {exc}", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    start = time.monotonic()
    period = max(args.interval, 1) / 1000.0
    try:
        while True:
            print(line(time.time(), time.monotonic() - start, faults, rng, args.max_mhz, args.style), flush=True)
            time.sleep(period)
    except (KeyboardInterrupt, BrokenPipeError):
        return 0


if __name__ == "__main__":
    sys.exit(main())
