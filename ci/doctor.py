"""`hilci doctor`, and the checks `hilci run` makes before its first stage: is everything here to run these stages?

Four things are checked, and every problem is named at once, one line each: the pipeline definition (every
stage's entry and settings class exist), hilci.yaml (every section typed), the rig the matrix stages will use,
and the tools each stage declares (`Stage.needs_tools`): a program on PATH (named with the apt-get command that
installs it) or a Python package (named with the extra of hilci that installs it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hilci.pipeline.model import Pipeline, Stage
from hilci.util import extras

# Programs a stage may need, and the Debian package that provides each.
APT_PACKAGES = {
    "groovy": "groovy",  # Debian's Groovy 2.4 (the one Jenkins embeds) parses the Jenkinsfile in the tests
    "java": "default-jre-headless",
    "git": "git",
    "make": "make",
    "pgrep": "procps",
}


@dataclass(frozen=True)
class MissingTool:
    """A tool that the named stages need and this machine lacks, with the command that installs it."""

    tool: str
    stages: tuple[str, ...]
    install: str

    def line(self) -> str:
        return f"{self.tool} is missing (needed by {', '.join(self.stages)}): {self.install}"


def install_command(tool: str) -> str:
    """The command that installs a tool on this machine (sudo when not root; pip extras for Python packages)."""
    if tool in extras.PACKAGES:
        return extras.package(tool).install()
    package = APT_PACKAGES.get(tool, tool)
    sudo = "" if os.geteuid() == 0 else "sudo "
    return f"{sudo}apt-get install -y {package}"


def is_installed(tool: str) -> bool:
    if tool in extras.PACKAGES:
        return extras.installed(tool)
    return shutil.which(tool) is not None


def missing_tools(stages: Iterable[Stage]) -> list[MissingTool]:
    """What the stages need and this machine lacks, in the order the stages first need it."""
    needed: dict[str, list[str]] = {}
    for stage in stages:
        for tool in stage.needs_tools:
            needed.setdefault(tool, []).append(stage.name)
    return [MissingTool(extras.package(tool).label if tool in extras.PACKAGES else tool, tuple(names),
                        install_command(tool))
            for tool, names in needed.items() if not is_installed(tool)]


def preflight(root: Path, pipeline: Pipeline, stages: list[Stage], rig: Path | None) -> list[str]:
    """Every reason the stages cannot run here, one line each (empty when they can); a broken definition is
    raised as the DefinitionError it is."""
    from hilci.pipeline import config

    pipeline.validate(root)  # DefinitionError: the checks below read the definition, so it comes first, alone
    problems = config.read(root, pipeline)[1]
    if rig is not None and any(s.matrix for s in stages):
        problems += check_rig(root, rig)
    problems += [m.line() for m in missing_tools(stages)]
    return problems


def check_rig(root: Path, rig: Path) -> list[str]:
    """The rig file's problems (its own loader's one-line errors)."""
    from hilci.hil.rig import RigError, load_rig

    path = rig if rig.is_absolute() else root / rig
    if not path.is_file():
        return [f"rig file {rig} does not exist"]
    try:
        load_rig(path)
    except RigError as exc:
        return [str(exc)]
    return []


def register(sub) -> None:
    from hilci.pipeline.project import add_pipeline_option

    p = sub.add_parser("doctor", help="check that this machine can run the pipeline's stages; say how to fix it")
    p.add_argument("--only", action="append", default=[], metavar="STAGE",
                   help="check only what these stages need (repeatable, or comma-separated)")
    p.add_argument("--rig", default=None, help="the rig the matrix stages will use (default: the pipeline's)")
    add_pipeline_option(p)
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args) -> int:
    import sys

    from hilci.pipeline.project import parse_only, pipeline_and_root

    pipeline, root = pipeline_and_root(args)
    only = parse_only(args.only)
    stages = [pipeline.stage(n) for n in only] if only else list(pipeline.stages)
    rig = Path(args.rig or pipeline.default_rig)
    problems = preflight(root, pipeline, stages, rig)
    for line in problems:
        print(f"hilci: {line}", file=sys.stderr)
    if problems:
        return 2
    tools = sorted({t for s in stages for t in s.needs_tools})
    print(f"ok: {len(stages)} stage{'' if len(stages) == 1 else 's'} ready in {root} (definition, {pipeline.config_file}, rig {rig}"
          + (f", {', '.join(tools)}" if tools else "") + ")")
    return 0
