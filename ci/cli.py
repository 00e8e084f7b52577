"""`hilci` and `python -m hilci`: one entry point; each concern registers its own subcommands.

Subcommand modules are imported at start-up, so they import nothing heavy (torch, kubernetes, jenkins)
at module level: each handler imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from hilci.errors import ConfigError, DefinitionError, StageError, UsageError

# Each module has `register(subparsers)`, adding parsers whose `func(args) -> int` runs the command.
COMMAND_MODULES = (
    "hilci.local.cli",
    "hilci.local.soak",
    "hilci.doctor",
    "hilci.jenkins.jenkinsfile",
    "hilci.jenkins.cli",
    "hilci.airflow.dagfile",
    "hilci.jenkins.pods",
    "hilci.kube.cli",
    "hilci.kube.soakjobs",
    "hilci.kube.deviceplugin.cli",
    "hilci.conversion.cli",
    "hilci.hil.cli",
    "hilci.store.cli",
    "hilci.scaffold",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hilci", description="CI with hardware in the loop.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, DefinitionError, StageError, ConfigError) as exc:
        print(f"hilci: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hilci: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `hilci trace X | head`: the reader left; not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
