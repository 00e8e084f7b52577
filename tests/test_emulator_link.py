"""An emulated device's port while it is unplugged: gone, like a real adapter's by-id name, so that a pty another
process opens meanwhile (the kernel hands out the freed /dev/pts number first) is never read as this device."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import yaml

from hilci.hil import health
from hilci.hil.emulators.gnss import GnssEmulator
from hilci.hil.emulators.process import RigEmulators, wait_for
from hilci.hil.locks import DeviceLock, lock_name
from hilci.hil.rig import load_rig

GNSS = {"driver": "gnss", "baud": 115200}
DEAD = {**GNSS, "faults": [{"kind": "disconnect", "after_s": 0, "duration_s": 3600}]}  # unplugged from power-on


def rig(folder: Path, name: str, gnss: dict):
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "emulate": True, "devices": {"gnss": gnss}}))
    return load_rig(path)


@pytest.mark.emulator
def test_an_unplugged_device_has_no_port_and_another_emulators_pty_is_not_read_as_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HILCI_LOCK_DIR", str(tmp_path / "locks"))
    dead = rig(tmp_path, "dead", DEAD)
    device = dead.devices["gnss"]
    for sub in ("dead-emu", "other-emu"):
        (tmp_path / sub).mkdir()
    with RigEmulators(dead, tmp_path / "dead-emu") as emus:
        handle = emus.handles["gnss"]
        assert wait_for(lambda: handle.command({"cmd": "stats"})["disconnects"] >= 1, 10.0)
        # the pty number the dead device had is free: the next emulator (anyone's) most likely gets it
        with RigEmulators(rig(tmp_path, "other", GNSS), tmp_path / "other-emu"):
            assert not os.path.lexists(handle.port), f"{handle.port} -> {os.readlink(handle.port)}"
            problem = health.probe(device, handle.port, DeviceLock(handle.port, "dead gnss"), 1.0)
            assert problem.startswith(f"gnss at {handle.port} did not answer within 1 s"), problem
        handle.command({"cmd": "clear"})  # plugged in again: its port is back and it answers
        assert wait_for(lambda: os.path.lexists(handle.port), 10.0)
        assert health.probe(device, handle.port, DeviceLock(handle.port, "dead gnss"), 5.0) == ""


def test_an_emulated_port_has_one_lock_whether_plugged_in_or_not(tmp_path):
    """The lock of a pty's link is the link's own (a pty is renumbered on reconnect), under its real folder:
    the same name while the link is there as while it is gone, even reached through a symlinked folder."""
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "real")
    port = str(tmp_path / "via" / "gnss")
    os.symlink("/dev/pts/4242", port)
    plugged = lock_name(port)
    os.unlink(port)
    assert lock_name(port) == plugged == lock_name(str(tmp_path / "real" / "gnss"))


@pytest.mark.emulator
def test_a_power_on_that_returned_is_never_followed_by_the_off_it_came_after(tmp_path):
    """The emulated switch's off is a disconnect fired at the emulator's next turn, its on a `clear`. A clear that
    arrives while that turn is firing the off waits for it: once on() has returned, nothing of the off is left to
    take the port away from the health probe that follows."""
    emu = GnssEmulator({"name": "gnss", "link": str(tmp_path / "gnss"), "baud": 115200})
    try:
        emu.inject(emu.parse({"kind": "disconnect", "duration_s": 3600}))  # off: due now
        order: list[str] = []
        close = emu.link.close

        def closing() -> None:  # the off fires: the switch's on() comes in at this very moment
            def power_on() -> None:
                emu.clear()
                order.append("on returned")
            on = threading.Thread(target=power_on)
            on.start()
            on.join(0.5)  # with the on() done here, the off would land after it
            close()
            order.append("off fired")

        emu.link.close = closing
        turn = threading.Thread(target=emu.service_events)
        turn.start()
        turn.join(10)
        assert wait_for(lambda: len(order) == 2, 10.0)
        assert order == ["off fired", "on returned"]
        emu.service_events()  # the next turn applies the on: the port is back
        assert emu.link.master >= 0 and os.path.lexists(tmp_path / "gnss")
    finally:
        emu.link.close = close
        emu.link.close()
