"""Rig leases: who holds a rig, since when and until when, and who waits for it, in the rig's fleet state
(`hilci.hil.fleet`).

A lease has a timeout (`lease_timeout_s` in the rig YAML) and its holder renews it while it lives (a heartbeat
thread, every third of the timeout). Every holder and waiter is a *presence*: a file under `fleet/alive/` that it
holds an `fcntl` lock on for its life, so "the process is gone" is seen by anyone on the node, across pods'
pid namespaces (the kernel drops the lock of a dead process). A rig is free when it has no lease, when its
holder is gone, or when its lease ran out without renewal (a hung holder); then the first waiter still present
gets it. A holder that finds its lease taken (it expired) is told so: its tests fail as `infrastructure`
("lease ... expired").
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hilci.hil import fleet

POLL_S = 0.1


class LeaseTimeout(Exception):
    """No rig became free for us within the wait; the message names the rigs, their holders and why."""


class Presence:
    """This process, as a holder or a waiter: a file it holds locked until `close()` (or its death)."""

    def __init__(self, where: Path, label: str):
        alive = where / "alive"
        alive.mkdir(exist_ok=True)
        try:
            os.chmod(alive, 0o1777)  # every pod's user adds its own file, none removes another's while it lives
        except OSError:
            pass
        self.token = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.label = label
        self.path = alive / self.token
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def who(self) -> dict[str, Any]:
        return {"token": self.token, "pid": os.getpid(), "host": socket.gethostname(), "label": self.label,
                "since": time.time()}

    def close(self) -> None:
        if self.fd >= 0:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = -1


def present(where: Path, token: str) -> bool:
    """Whether the holder or waiter `token` still lives (its presence file is locked)."""
    path = where / "alive" / token
    try:
        fd = os.open(path, os.O_RDONLY)  # read-only: a pod of another user may check it (flock needs no write)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # there, but not ours to open: never take a rig from a holder we cannot see
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    try:
        path.unlink(missing_ok=True)  # its owner is gone: tidy up (the sticky folder may keep another user's)
    except OSError:
        pass
    return False


def vacancy(lease: dict[str, Any] | None, where: Path, now: float) -> str:
    """'' when the lease is held and live; else why the rig is free ('free', 'holder ... gone', 'lease ...
    expired ...')."""
    if not lease:
        return "free"
    if not present(where, lease["token"]):
        return f"holder pid {lease['pid']} ({lease['label']}) gone without releasing it"
    if now > lease["renewed"] + lease["ttl_s"]:
        return (f"lease of pid {lease['pid']} ({lease['label']}) expired: not renewed within "
                f"{lease['ttl_s']:g} s")
    return ""


def left_s(lease: dict[str, Any] | None, now: float | None = None) -> float | None:
    if not lease:
        return None
    return lease["renewed"] + lease["ttl_s"] - (now if now is not None else time.time())


class Lease:
    """This process's lease on one rig, renewed by a heartbeat thread until `release()`."""

    def __init__(self, rig: str, where: Path, me: Presence, ttl_s: float):
        self.rig, self.where, self.me, self.ttl_s = rig, where, me, ttl_s
        self.lost = ""  # why the lease is no longer ours, once the heartbeat found it so
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"lease-{rig}", daemon=True)
        self.on_lost: list[Callable[[str], None]] = []

    def start(self) -> Lease:
        self.thread.start()
        return self

    def renew(self) -> str:
        """Renew the lease; '' when it is still ours, else why not."""
        def apply(state, _fleet):
            lease = state.get("lease")
            if not lease or lease["token"] != self.me.token:
                taken = f"; the rig went to pid {lease['pid']} ({lease['label']})" if lease else ""
                return (f"rig {self.rig}: lease of pid {os.getpid()} expired: not renewed within "
                        f"{self.ttl_s:g} s{taken}")
            lease["renewed"] = time.time()
            return ""
        return fleet.change(self.rig, self.where, apply)

    def _beat(self) -> None:
        while not self.stop.wait(self.ttl_s / 3):
            try:
                problem = self.renew()
            except OSError as exc:
                problem = f"rig {self.rig}: lease not renewed ({exc})"
            if problem:
                self.lost = problem
                for fn in self.on_lost:
                    fn(problem)
                return

    def release(self) -> None:
        self.stop.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)

        def apply(state, _fleet):
            lease = state.get("lease")
            if lease and lease["token"] == self.me.token:
                state["lease"] = None
        fleet.change(self.rig, self.where, apply)


def try_take(rig: str, where: Path, me: Presence, ttl_s: float, skip: Callable[[dict], str]) -> tuple[bool, str]:
    """Take the rig's lease if it is free and we are first among the waiters still present (else queue up).
    (taken, note): note says why it was free when a holder died or its lease expired, or why it is skipped."""
    def apply(state, _fleet):
        now = time.time()
        why_not = skip(state)
        state["waiters"] = [w for w in state["waiters"] if present(where, w["token"])]
        if why_not:
            state["waiters"] = [w for w in state["waiters"] if w["token"] != me.token]
            return False, why_not
        if not any(w["token"] == me.token for w in state["waiters"]):
            state["waiters"].append(me.who())
        lease = state.get("lease")
        if lease and lease["token"] == me.token:
            return True, ""
        free = vacancy(lease, where, now)
        if not free or state["waiters"][0]["token"] != me.token:
            return False, ""
        note = "" if free == "free" else free
        if note:
            fleet.event(state, f"lease freed: {note}; given to pid {os.getpid()} ({me.label})")
        state["waiters"] = state["waiters"][1:]
        state["lease"] = {**me.who(), "renewed": now, "ttl_s": ttl_s}
        return True, note
    return fleet.change(rig, where, apply)


def leave_queues(rigs: list[str], where: Path, me: Presence) -> None:
    for rig in rigs:
        def apply(state, _fleet):
            state["waiters"] = [w for w in state["waiters"] if w["token"] != me.token]
        fleet.change(rig, where, apply)


def acquire_any(rigs: list[tuple[str, float]], where: Path, me: Presence, wait_s: float,
                skip: Callable[[dict], str] = lambda _state: "",
                told: Callable[[str], None] = lambda _line: None) -> tuple[Lease, str]:
    """The lease of the first of `rigs` ((name, ttl_s), in order of preference) that becomes ours within
    `wait_s`, waiting in every queue meanwhile; rigs for which `skip(state)` names a reason are not taken (and
    `told` that reason once). (lease, note): note says why the rig was free when its holder had died or its
    lease had expired. LeaseTimeout naming every rig's holder when none is free in time."""
    deadline = time.monotonic() + wait_s
    skipped: dict[str, str] = {}
    while True:
        for name, ttl_s in rigs:
            taken, note = try_take(name, where, me, ttl_s, skip)
            if not taken and note and name not in skipped:
                skipped[name] = note
                told(note)
            elif taken:
                leave_queues([n for n, _ in rigs if n != name], where, me)
                return Lease(name, where, me, ttl_s).start(), note
        if len(skipped) == len(rigs) or time.monotonic() > deadline:
            leave_queues([n for n, _ in rigs], where, me)
            held = []
            for name, _ in rigs:
                if name in skipped:
                    held.append(skipped[name])
                    continue
                lease = (fleet.read(name, where) or {}).get("lease") or {}
                held.append(f"rig {name} held by pid {lease.get('pid', '?')} ({lease.get('label', '?')})")
            raise LeaseTimeout(("no rig in service" if len(skipped) == len(rigs) else
                                f"no rig free within {wait_s:g} s") + ": " + "; ".join(held))
        time.sleep(POLL_S)
