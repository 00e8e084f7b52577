"""`python -m hilci.hil.emulators SPEC_JSON`: run one emulator until stdin closes or it is told to stop.

SPEC names the emulator class as "module:attribute" (and, for a kind added outside `ci`, the folder its module
imports from), so this process needs no registry.
"""

from __future__ import annotations

import json
import signal
import sys

from hilci.hil.registry import resolve


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    if spec.get("import_root"):
        sys.path.insert(0, spec["import_root"])
    emulator = resolve(spec["emulator"])(spec)
    signal.signal(signal.SIGTERM, lambda *_: emulator.stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the whole group; the parent stops us
    return emulator.main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
