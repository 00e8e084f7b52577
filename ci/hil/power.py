"""Power switches: how a rig turns a device (or itself) off and on again, to bring back a device that stopped
answering.

A rig declares one per device (`devices.NAME.power:`) or for the whole rig (`power:`):

    power: {switch: uhubctl, hub: "1-1", port: 2}             # a USB hub port with per-port power (uhubctl)
    power: {switch: gpio, chip: gpiochip0, line: 17}           # a relay on a Jetson GPIO line (libgpiod v2)
    power: {switch: command, off: "relay 3 off", on: "relay 3 on"}   # anything else ({rig}, {device} filled in)

On an emulated rig every switch (`switch: emulated`, or one copied from a real rig) is the emulator's own: off closes the device's pty (the `disconnect` fault,
held), on brings it back in its power-on state with every fault cleared (a reboot). Each command has a timeout
(`timeout_s`); a switch that does not answer is one `PowerError` line naming the rig and the switch.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable
from typing import Any

from hilci.util.settings import flag, integer, number, settings, text

SWITCHES = ("uhubctl", "gpio", "command", "emulated")  # emulated: only on an emulated rig
HELD_S = 3600  # an emulated device switched off stays off until switched on


class PowerError(Exception):
    """A power switch failed or did not answer; the message names the rig and the switch."""


@settings
class PowerSettings:
    """One power switch, as the rig YAML declares it."""

    switch: str = text(choices=SWITCHES, help="uhubctl (USB hub port), gpio (relay on a GPIO line), command, or "
                                              "emulated (an emulated rig's own)")
    hub: str | None = text(None, allow_none=True, help="uhubctl: the hub's location (uhubctl -l), e.g. 1-1")
    port: int | None = integer(None, allow_none=True, ge=1, le=255, help="uhubctl: the hub's port")
    chip: str | None = text(None, allow_none=True, help="gpio: the GPIO chip, e.g. gpiochip0 or /dev/gpiochip0")
    line: int | None = integer(None, allow_none=True, ge=0, le=1023, help="gpio: the line's offset")
    active_low: bool = flag(False, help="gpio: the relay powers the device while the line is low")
    off: str | None = text(None, allow_none=True, help="command: switches off ({rig}, {device} filled in)")
    on: str | None = text(None, allow_none=True, help="command: switches on")
    off_s: float = number(2.0, ge=0, le=60, help="cycle: how long the power stays off")
    timeout_s: float = number(10.0, gt=0, le=120, help="each switch command may take this long")


NEEDS = {"uhubctl": ("hub", "port"), "gpio": ("chip", "line"), "command": ("off", "on"), "emulated": ()}


def check(power: PowerSettings) -> str:
    """'' or 'FIELD: problem' for a switch missing what its kind needs."""
    for name in NEEDS[power.switch]:
        if getattr(power, name) is None:
            return f"{name}: required for a {power.switch} switch"
    return ""


class PowerSwitch:
    """Off, on, and a cycle of both, each bounded by `timeout_s`; `name` says which rig and switch."""

    def __init__(self, power: PowerSettings, name: str):
        self.power = power
        self.name = name

    def off(self) -> None:
        raise NotImplementedError

    def on(self) -> None:
        raise NotImplementedError

    def verify(self) -> None:
        """Raise PowerError when the switch cannot be what the rig says (checked when a session starts)."""

    def cycle(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self.off()
        sleep(self.power.off_s)
        self.on()


class CommandSwitch(PowerSwitch):
    """A switch driven by commands (`off`/`on` templates, or argument lists made by a subclass)."""

    def __init__(self, power: PowerSettings, name: str, fill: dict[str, str] | None = None):
        super().__init__(power, name)
        self.fill = fill or {}

    def argv(self, state: str) -> list[str]:
        template = self.power.off if state == "off" else self.power.on
        return shlex.split(template.format(**self.fill))

    def run(self, argv: list[str]) -> str:
        """The command's output; PowerError when it cannot start, fails or does not finish in time."""
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.power.timeout_s)
        except subprocess.TimeoutExpired:
            raise PowerError(f"{self.name}: `{shlex.join(argv)}` did not answer within "
                             f"{self.power.timeout_s:g} s") from None
        except OSError as exc:
            raise PowerError(f"{self.name}: `{shlex.join(argv)}` cannot run ({exc.strerror})") from None
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
            raise PowerError(f"{self.name}: `{shlex.join(argv)}` failed (exit {proc.returncode}): {last[0]}")
        return proc.stdout

    def off(self) -> None:
        self.run(self.argv("off"))

    def on(self) -> None:
        self.run(self.argv("on"))


class UhubctlSwitch(CommandSwitch):
    """A USB hub port with per-port power switching, through `uhubctl -l HUB -p PORT -a off|on`."""

    def argv(self, state: str) -> list[str]:
        return ["uhubctl", "-l", str(self.power.hub), "-p", str(self.power.port), "-a", state]

    def verify(self) -> None:
        """The hub must be there with the port: `uhubctl -l HUB` lists its ports ("  Port N: ...")."""
        out = self.run(["uhubctl", "-l", str(self.power.hub)])
        ports = {int(w.rstrip(":")) for line in out.splitlines() if line.strip().startswith("Port ")
                 for w in line.split()[1:2] if w.rstrip(":").isdigit()}
        if not ports:
            raise PowerError(f"{self.name}: uhubctl finds no hub {self.power.hub} with per-port power")
        if self.power.port not in ports:
            raise PowerError(f"{self.name}: hub {self.power.hub} has no port {self.power.port} "
                             f"(ports {', '.join(map(str, sorted(ports)))})")


class GpioSwitch(PowerSwitch):
    """A relay on a GPIO line, held through libgpiod v2's Python bindings (`gpiod`) for the session."""

    def __init__(self, power: PowerSettings, name: str):
        super().__init__(power, name)
        self.request: Any = None

    def set(self, powered: bool) -> None:
        try:
            import gpiod
            from gpiod.line import Direction, Value
        except ImportError:
            raise PowerError(f"{self.name}: a gpio switch needs libgpiod's Python bindings "
                             "(`pip install gpiod`, libgpiod v2)") from None
        value = Value.ACTIVE if powered else Value.INACTIVE
        chip = str(self.power.chip)
        path = chip if chip.startswith("/") else f"/dev/{chip}"
        try:
            if self.request is None:
                config = {self.power.line: gpiod.LineSettings(direction=Direction.OUTPUT, output_value=value,
                                                              active_low=self.power.active_low)}
                self.request = gpiod.request_lines(path, consumer="hilci-power", config=config)
            else:
                self.request.set_value(self.power.line, value)
        except (OSError, ValueError) as exc:
            raise PowerError(f"{self.name}: {path} line {self.power.line}: {exc}") from None

    def off(self) -> None:
        self.set(False)

    def on(self) -> None:
        self.set(True)


class EmulatedSwitch(PowerSwitch):
    """The emulators' switch: off holds a `disconnect` (the pty closes), on clears it and every other fault, and
    the device comes back in its power-on state (rebooted)."""

    def __init__(self, power: PowerSettings, name: str, controls: list[str],
                 send: Callable[[str, dict], dict]):
        super().__init__(power, name)
        self.controls = controls
        self.send = send

    def command(self, cmd: dict) -> None:
        for path in self.controls:
            try:
                reply = self.send(path, cmd)
            except (OSError, ValueError) as exc:
                raise PowerError(f"{self.name}: the emulator did not answer ({exc})") from None
            if not reply.get("ok"):
                raise PowerError(f"{self.name}: the emulator refused: {reply.get('error', reply)}")

    def off(self) -> None:
        self.command({"cmd": "fault", "kind": "disconnect", "duration_s": HELD_S})

    def on(self) -> None:
        self.command({"cmd": "clear"})


def make_switch(power: PowerSettings, name: str, *, fill: dict[str, str] | None = None) -> PowerSwitch:
    """The switch a real rig declares (an emulated rig's are `EmulatedSwitch`es, made by the session)."""
    if power.switch == "uhubctl":
        return UhubctlSwitch(power, name)
    if power.switch == "gpio":
        return GpioSwitch(power, name)
    return CommandSwitch(power, name, fill)


def describe(power: PowerSettings) -> str:
    """How the rig file names a switch, for messages: 'uhubctl hub 1-1 port 2'."""
    if power.switch == "uhubctl":
        return f"uhubctl hub {power.hub} port {power.port}"
    if power.switch == "gpio":
        return f"gpio {power.chip} line {power.line}"
    if power.switch == "emulated":
        return "the emulator's switch"
    return f"command {power.off!r}/{power.on!r}"
