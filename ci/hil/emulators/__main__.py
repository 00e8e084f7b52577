"""`python -m ci.hil.emulators SPEC_JSON`: run one emulator until stdin closes or it is told to stop."""

from __future__ import annotations

import importlib
import json
import signal
import sys

from ci.hil.emulators import EMULATORS


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    module, _, cls = EMULATORS[spec["kind"]].partition(":")
    emulator = getattr(importlib.import_module(module), cls)(spec)
    signal.signal(signal.SIGTERM, lambda *_: emulator.stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the whole group; the parent stops us
    return emulator.main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
