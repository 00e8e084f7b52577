"""Bringing a device back: the rigs' power switches (`hilci.hil.power`) as the HIL session uses them: checked when
the session starts (a switch naming a hub port that is not there is a rig error), and a power cycle (or, without
a switch, a reconnect) for a device that dropped out, before its test is retried."""

from __future__ import annotations

import pytest

from hilci.hil import health
from hilci.hil.power import EmulatedSwitch, PowerError, PowerSwitch, describe, make_switch
from hilci.hil.rig import Device


class PowerMixin:
    """Part of `HilSession` (its rigs, emulation, ports, locks and health verdicts)."""

    def switch(self, device: Device) -> PowerSwitch | None:
        rig = self.rig(device.rig)
        power = rig.power_of(device)
        if power is None:
            return None
        own = device.power is not None
        name = f"rig {rig.name}: {f'power switch of {device.name}' if own else 'rig power switch'} ({describe(power)})"
        if rig.emulate:
            from hilci.hil.emulators.process import send

            labels = [device.label] if own else [d.label for d in rig.devices.values()]
            return EmulatedSwitch(power, name, [self.emulation.controls[x] for x in labels
                                                if x in self.emulation.controls], send)
        return make_switch(power, name, fill={"rig": rig.name, "device": device.name})

    def verify_power(self) -> None:
        """Every real rig's switches exist as declared (a hub with that port): else a rig error."""
        for rig in self.rigs:
            if rig.emulate:
                continue
            declared = [("power", rig.power)] + [(f"devices.{d.name}.power", d.power) for d in rig.devices.values()]
            for field, power in declared:
                if power is None:
                    continue
                try:
                    make_switch(power, f"rig {rig.name}: {describe(power)}").verify()
                except PowerError as exc:
                    raise pytest.UsageError(f"{rig.path}: {field}: {exc}") from None

    def recover(self, device: Device) -> tuple[str, str]:
        """Bring back a device that dropped out: a power cycle where the rig declares a switch, else a reconnect,
        then it must answer. (how, problem): problem is '' when it answers again."""
        switch = self.switch(device)
        how = "reconnected"
        if switch is not None:
            try:
                switch.cycle()
            except PowerError as exc:
                return "power cycle failed", str(exc)
            how = "power-cycled"
        timeout = self.rig(device.rig).settings.health_timeout_s
        problem = health.probe(device, self.port(device), self.lock(device), timeout)
        if not problem:
            self.health[device.label] = ""  # it answers now: its later tests run
        return how, problem
