"""The device plugin's heartbeat, and the check its DaemonSet's liveness probe runs (`hilci deviceplugin --check`).

A plugin can be alive as a process and still wedged: its registration loop stuck (the kubelet restarts and no one
re-registers) or a rig's health thread stuck in a driver (that rig's verdict never changes again). The
registration loop writes a heartbeat file on every turn with the time each rig's last probe finished; the check
fails when the heartbeat is stale (the loop is stuck) or a rig's last probe is stale when the heartbeat was
written (its thread is stuck), and the kubelet then restarts the container. Plain files: the check needs no gRPC.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

HEARTBEAT = "deviceplugin.alive"  # in the plugin's --state-dir
STALE_FLOOR_S = 60.0  # a probe round takes seconds (each device capped at a few); a minute is clearly stuck


def stale_after(interval_s: float) -> float:
    return max(STALE_FLOOR_S, 10 * interval_s)


def write(state_dir: Path, rigs: dict[str, float], stale_after_s: float) -> None:
    """Atomically: when it was written, how old is too old, and when each rig's last probe finished."""
    path = state_dir / HEARTBEAT
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"written": time.time(), "stale_after_s": stale_after_s, "rigs": rigs}))
    os.replace(tmp, path)


def check(state_dir: Path, now: float | None = None) -> str | None:
    """None when the plugin is alive; else one line saying what is stuck."""
    path = state_dir / HEARTBEAT
    try:
        beat = json.loads(path.read_text())
        written, limit, rigs = float(beat["written"]), float(beat["stale_after_s"]), dict(beat["rigs"])
    except FileNotFoundError:
        return f"{path}: no heartbeat (the plugin has not started, or runs with another --state-dir)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{path}: unreadable heartbeat ({type(exc).__name__}: {exc})"
    age = (time.time() if now is None else now) - written
    if age > limit:
        return f"{path}: heartbeat {age:.0f} s old (limit {limit:g} s): the registration loop is stuck"
    stuck = sorted(rig for rig, finished in rigs.items() if written - float(finished) > limit)
    if stuck:
        worst = max(written - float(rigs[r]) for r in stuck)
        return (f"rig {', '.join(stuck)}: no health probe finished for {worst:.0f} s (limit {limit:g} s): "
                "its probe is stuck")
    return None
