"""`hilci emulate RIG`: run a rig's emulators on their own, so other software can talk to the emulated robot.

Prints each device's port and control socket, then reads fault commands on stdin (`DEVICE KIND [k=v ...]`,
`DEVICE clear`, `DEVICE stats`, `DEVICE state`) until Ctrl-C or end of input; then stops every emulator.
"""

from __future__ import annotations

import json
import signal
import sys
import threading


def register(subparsers) -> None:
    p = subparsers.add_parser("emulate", help="start a rig's device emulators and print their ports",
                              description=__doc__)
    p.add_argument("rig", help="rig YAML (its devices are emulated whatever its `emulate` says)")
    p.add_argument("--fault", action="append", default=[], metavar="DEVICE:KIND[:k=v,...]",
                   help="inject a fault at start, e.g. imu:rate_drop:rate_hz=150")
    p.add_argument("--for", dest="duration", type=float, default=0.0, metavar="SECONDS",
                   help="stop after SECONDS (default: run until Ctrl-C)")
    p.set_defaults(func=emulate)
    from hilci.hil import guard

    g = subparsers.add_parser("rig-guard", help="make a rig's actuators safe when their holder dies uncleanly",
                              description=guard.__doc__)
    guard.add_arguments(g)
    g.set_defaults(func=guard.guard)
    from hilci.hil import rigscli

    rigscli.register(subparsers)


def emulate(args) -> int:
    import dataclasses

    from hilci.errors import UsageError
    from hilci.hil.emulators.process import EmulatorError, RigEmulators
    from hilci.hil.faults import FaultError, parse_targeted
    from hilci.hil.rig import RigError, load_rig

    try:
        rig = load_rig(args.rig)
    except RigError as exc:
        raise UsageError(str(exc)) from None
    faults = {}
    for text in args.fault:
        try:
            device, fault, _ = parse_targeted(text, {d.name: d.kind for d in rig.devices.values()}, tests=False)
        except FaultError as exc:
            raise UsageError(f"--fault {exc}") from None
        faults.setdefault(device, []).append(fault)
    devices = {name: dataclasses.replace(d, faults=d.faults + tuple(faults.get(name, ())))
               for name, d in rig.devices.items()}
    rig = dataclasses.replace(rig, devices=devices, emulate=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    emus = RigEmulators(rig)
    try:
        try:
            emus.start()
        except EmulatorError as exc:
            raise UsageError(str(exc)) from None
        print(f"rig {rig.name}: {len(emus.handles)} emulated devices (Ctrl-C stops them)")
        for name, handle in emus.handles.items():
            dev = rig.devices[name]
            print(f"  {name:<8} {dev.driver:<7} port {handle.port}  baud {dev.baud}  control {handle.control}")
        print("faults: type 'DEVICE KIND [key=value ...]' (kinds: disconnect stall corrupt garbage rate_drop leak drift "
              "reboot hw_error), 'DEVICE clear', 'DEVICE stats' or 'DEVICE state'", flush=True)
        reader = threading.Thread(target=_commands, args=(emus, stop), daemon=True)
        reader.start()
        stop.wait(args.duration or None)
    except KeyboardInterrupt:
        pass
    finally:
        emus.stop()
        print("emulators stopped", flush=True)
    return 0


def _commands(emus, stop: threading.Event) -> None:
    """Fault controls from stdin; end of input leaves the emulators running until Ctrl-C."""
    from hilci.hil.emulators.process import EmulatorError
    from hilci.hil.faults import FaultError, parse_fault

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        device, rest = words[0], words[1:]
        handle = emus.handles.get(device)
        if handle is None or not rest:
            print(f"? usage: DEVICE KIND [k=v ...] with DEVICE one of {', '.join(emus.handles)}", flush=True)
            continue
        try:
            if rest[0] in ("clear", "stats", "state"):
                reply = handle.command({"cmd": rest[0]})
            else:
                dev = emus.rig.devices[device]
                reply = handle.fault(parse_fault(rest[0] + ":" + ",".join(rest[1:]), file=device,
                                                 device_kind=dev.driver, allowed=dev.kind.faults))
        except (FaultError, EmulatorError) as exc:
            print(f"? {exc}", flush=True)
            continue
        print(json.dumps(reply), flush=True)
    if stop.is_set():
        return
