"""The rig guard: actuators made safe when the process holding them dies without a clean release.

Every exit path of a test process makes its actuators safe (`safestate`), except the one it cannot see: SIGKILL
(an OOM kill, an evicted or deleted pod). A Dynamixel servo commanded to hold torque keeps holding it after its
client is gone. So a holder marks each actuator it opens "in use" (`mark`: a `.holder` file beside the device's
fcntl lock, naming its pid, rig and port) and removes the mark after making it safe, before it releases the lock.
A mark whose lock is free is therefore a holder that died uncleanly: the kernel dropped its lock, the mark
stayed. The guard (`hilci rig-guard`, beside the rig's device plugin on the node) looks every POLL_S; for such a
device it takes the lock (no next holder gets the device meanwhile), turns torque off, probes the device, records
why in `guard.jsonl` in the lock folder, and only then removes the mark and lets the lock go. On a cluster it is a
container of the rig device plugin's DaemonSet (deploy/rig-device-plugin.yaml) watching the plugin's shared lock
folder; a pod's mark names the rig as the pod sees it, which the guard finds among the plugin's allocated rigs.

Bound: a dead holder's actuator is safe within POLL_S plus one torque-off (about 0.3 s; goal 1 s).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hilci.hil.locks import DeviceLock, lock_dir

POLL_S = 0.2
SAFE_TIMEOUT_S = 2.0
PROBE_TIMEOUT_S = 2.0
MARK_SUFFIX = ".holder"
RECORDS = "guard.jsonl"


def mark(lock: DeviceLock, rig_path: Path | str, device: str, port: str) -> Path:
    """Say that this process holds `device`'s actuator live (called with the device's lock held)."""
    path = lock.path.with_suffix(MARK_SUFFIX)
    path.write_text(json.dumps({"pid": os.getpid(), "rig": str(Path(rig_path).resolve()), "device": device,
                                "port": port, "since": time.time()}))
    return path


def unmark(path: Path) -> None:
    """The actuator is safe: the clean release (before the lock is let go)."""
    path.unlink(missing_ok=True)


def sweep(folder: Path) -> list[dict[str, Any]]:
    """Make safe every device whose holder died without a clean release; a record for each."""
    records = []
    for marker in sorted(folder.glob(f"*{MARK_SUFFIX}")):
        fd = os.open(marker.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its holder is alive and holds it
            try:
                info = json.loads(marker.read_text())
            except FileNotFoundError:
                continue  # released cleanly while we looked
            except (OSError, ValueError):
                info = {}
            record = make_safe(info, marker)
            with open(folder / RECORDS, "a") as out:
                out.write(json.dumps(record) + "\n")
            marker.unlink(missing_ok=True)  # made safe and probed: the next holder may have it
            print(f"hilci rig-guard: {record['device']} at {record['port']}: {record['why']}; {record['safe']}"
                  + (f"; probe: {record['probe']}" if record["probe"] else "; probe: answered"), flush=True)
            records.append(record)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
    return records


def rig_file(info: dict[str, Any], folder: Path) -> str:
    """The rig YAML a mark names, as this process can read it. A holder in a pod names the rig where the pod sees
    it (/etc/hilci/rig.yaml, mounted by the device plugin's Allocate); on the node that file is the plugin's
    `<state dir>/allocated/<rig id>.yaml`, beside the lock folder: the one whose device of that name has that port."""
    from hilci.errors import YamlFileError
    from hilci.util.yamlfile import load_yaml

    path = str(info.get("rig", ""))
    if Path(path).is_file():
        return path
    for candidate in sorted((folder.parent / "allocated").glob("*.yaml")):
        try:
            devices = (load_yaml(candidate) or {}).get("devices") or {}
        except (YamlFileError, AttributeError):  # a file being rewritten, or not a rig: not this one
            continue
        if (devices.get(info.get("device")) or {}).get("port") == info.get("port"):
            return str(candidate)
    return path


def make_safe(info: dict[str, Any], marker: Path) -> dict[str, Any]:
    """Torque off and a probe for the device a dead holder left; what happened, for the record."""
    from hilci.hil.drivers import DeviceError, driver_for
    from hilci.hil.rig import RigError, load_rig
    from hilci.hil.safestate import make_safe as torque_off

    found = time.time()
    pid = info.get("pid", "?")
    record = {"at": found, "marker": str(marker), "pid": pid, "rig": info.get("rig", ""),
              "device": info.get("device", "?"), "port": info.get("port", "?"),
              "why": f"holder pid {pid} died without a clean release (its lock freed by the kernel, its in-use "
                     "mark left)", "safe": "", "probe": ""}
    try:
        device = load_rig(rig_file(info, marker.parent)).devices[info["device"]]
    except (KeyError, RigError) as exc:
        record["safe"] = f"not made safe: the mark names no device of a readable rig ({exc})"
        return record
    driver = driver_for(device, info["port"])
    started = time.monotonic()
    try:
        torque_off(driver, timeout=SAFE_TIMEOUT_S)
        record["safe"] = f"made safe in {(time.monotonic() - started) * 1000:.0f} ms"
    except DeviceError as exc:
        record["safe"] = f"NOT made safe: {exc}"
    finally:
        driver.close()
    try:  # the next holder must find a device that answers, or be told why not
        driver = driver_for(device, info["port"])
        driver.open(timeout=PROBE_TIMEOUT_S)
        driver.health(PROBE_TIMEOUT_S)
    except DeviceError as exc:
        record["probe"] = str(exc)
    finally:
        driver.close()
    return record


def run(folder: Path, stop: threading.Event, period_s: float = POLL_S) -> None:
    while not stop.is_set():
        sweep(folder)
        stop.wait(period_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hilci rig-guard", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return guard(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lock-dir", default=None, metavar="DIR",
                        help="the device locks' folder (default $HILCI_LOCK_DIR, else /tmp/hilci-locks)")
    parser.add_argument("--period", type=float, default=POLL_S, metavar="S", help=f"look every S s ({POLL_S})")


def guard(args) -> int:
    import hilci.hil.drivers  # noqa: F401  loaded now, not in the second that counts after a holder dies
    import hilci.hil.rig  # noqa: F401
    import hilci.hil.safestate  # noqa: F401

    folder = Path(args.lock_dir) if args.lock_dir else lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    print(f"hilci rig-guard: watching {folder} every {args.period:g} s", flush=True)
    try:
        run(folder, threading.Event(), args.period)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
