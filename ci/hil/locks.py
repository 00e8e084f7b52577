"""Exclusive devices: one `fcntl` lock file per device, so two processes never talk to one device at once.

The kernel drops an fcntl lock when its holder dies, so a crashed run leaves no stale lock. A waiter gives up
after a timeout and names the holder's pid (written into the lock file by the holder).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from pathlib import Path

from hilci.util.retry import Backoff, retry


class DeviceBusy(Exception):
    """The device is held by another process for longer than we were willing to wait."""


def lock_dir() -> Path:
    path = Path(os.environ.get("HILCI_LOCK_DIR", "/tmp/hilci-locks"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def lock_name(port: str) -> str:
    """One name per physical device: symlinks (by-id names, emulator links) resolve to the same lock."""
    real = os.path.realpath(port)
    if real.startswith("/dev/pts/"):
        # a pty is renumbered on reconnect: lock its stable link instead, under its real folder, which is also
        # what realpath gives while the link is gone (an emulated device unplugged)
        real = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(port))), os.path.basename(port))
    slug = re.sub(r"[^A-Za-z0-9]+", "_", real).strip("_")[-60:]
    return f"{slug}-{hashlib.sha1(real.encode()).hexdigest()[:8]}.lock"


class DeviceLock:
    """Held while a test talks to a device; re-entrant within one process."""

    def __init__(self, port: str, label: str, timeout: float = 10.0, folder: Path | None = None):
        self.path = (folder or lock_dir()) / lock_name(port)
        self.label = label
        self.timeout = timeout
        self.fd = -1
        self.depth = 0

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def acquire(self) -> DeviceLock:
        if self.depth:
            self.depth += 1
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            retry(lambda: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB), on=(BlockingIOError,),
                  timeout_s=self.timeout, backoff=Backoff(first_s=0.01, max_s=0.2))
        except BlockingIOError:
            os.close(fd)
            raise DeviceBusy(f"{self.label}: busy, held by pid {self.holder()} "
                             f"(lock {self.path}); gave up after {self.timeout:g} s") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd, self.depth = fd, 1
        return self

    def release(self) -> None:
        if not self.depth:
            return
        self.depth -= 1
        if self.depth:
            return
        try:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> DeviceLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def rig_lock_name(ports: list[str]) -> str:
    """One name per rig, from its devices' lock names: the device plugin's rig YAML (by-id names) and the pod's
    allocated copy (device nodes) name the same rig lock."""
    names = "\n".join(sorted(lock_name(p) for p in ports))
    return f"rig-{hashlib.sha1(names.encode()).hexdigest()[:16]}.lock"


class RigLock:
    """A whole rig, beside its device locks: held shared by a pytest session from its start to its end (so also
    between its tests, when no device lock is held), taken exclusive and without waiting by the device plugin's
    health probe before it opens anything. A probe therefore never opens a device of a rig that a session holds,
    and a session starting during a probe waits for it (a probe is bounded: seconds)."""

    def __init__(self, ports: list[str], label: str, folder: Path | None = None):
        self.path = (folder or lock_dir()) / rig_lock_name(ports)
        self.label = label
        self.fd = -1

    def _open(self) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            os.fchmod(fd, 0o666)  # the plugin runs as root, the tests as a pod's user: both open it
        except OSError:
            pass
        return fd

    def hold_for_session(self, timeout: float) -> RigLock:
        """Shared: one session (and its xdist workers) at a time per rig is the kubelet's and Jenkins's job."""
        fd = self._open()
        try:
            retry(lambda: fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB), on=(BlockingIOError,),
                  timeout_s=timeout, backoff=Backoff(first_s=0.01, max_s=0.2))
        except BlockingIOError:
            os.close(fd)
            raise DeviceBusy(f"rig {self.label}: its health probe did not let go within {timeout:g} s "
                             f"(lock {self.path})") from None
        self.fd = fd
        return self

    def try_for_probe(self) -> bool:
        """Exclusive, never waiting: False while any session holds the rig."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd < 0:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = -1
