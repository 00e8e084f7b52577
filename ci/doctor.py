"""`hilci doctor`, and the checks `hilci run` makes before its first stage: is everything here to run these stages?

Five things are checked, and every problem is named at once, one line each: the pipeline definition (every
stage's entry and settings class exist), hilci.yaml (every section typed), the rig the matrix stages will use,
and the tools each stage declares (`Stage.needs_tools`): a program on PATH (named with the apt-get command that
installs it) or a Python package (for hilci's own stages, named with the extra of hilci that installs it; for a
project's own, with its own name); and a configured S3 store has credentials here (unless hilci.yaml says
`store_optional: true`).
"""

from __future__ import annotations

import importlib.util
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


def install_command(tool: str, hilcis_own: bool = True) -> str:
    """The command that installs a tool on this machine: for hilci's own stages, the extra of hilci that brings
    it; for a project's own stages the package itself (`pip install onnx`), never an extra of hilci's; apt-get
    (sudo when not root) for the programs hilci knows, else a plain word."""
    if tool in extras.PACKAGES:
        package = extras.package(tool)
        return package.install() if hilcis_own else f"pip install {package.distribution}"
    if tool in APT_PACKAGES:
        sudo = "" if os.geteuid() == 0 else "sudo "
        return f"{sudo}apt-get install -y {APT_PACKAGES[tool]}"
    return "install it (neither a program on PATH nor an importable Python package)"


def is_installed(tool: str) -> bool:
    if tool in extras.PACKAGES:
        return extras.installed(tool)
    if shutil.which(tool) is not None:
        return True
    try:
        return tool.isidentifier() and importlib.util.find_spec(tool) is not None
    except (ImportError, ValueError):
        return False


def missing_tools(stages: Iterable[Stage]) -> list[MissingTool]:
    """What the stages need and this machine lacks, in the order the stages first need it."""
    needed: dict[str, list[Stage]] = {}
    for stage in stages:
        for tool in stage.needs_tools:
            needed.setdefault(tool, []).append(stage)
    return [MissingTool(extras.package(tool).label if tool in extras.PACKAGES else tool,
                        tuple(s.name for s in needers),
                        install_command(tool, hilcis_own=all(s.entry.startswith("hilci.") for s in needers)))
            for tool, needers in needed.items() if not is_installed(tool)]


def preflight(root: Path, pipeline: Pipeline, stages: list[Stage], rig: Path | None) -> list[str]:
    """Every reason the stages cannot run here, one line each (empty when they can); a broken definition is
    raised as the DefinitionError it is."""
    from hilci.hil import discovery
    from hilci.pipeline import config

    pipeline.validate(root)  # DefinitionError: the checks below read the definition, so it comes first, alone
    discovery.load(root)  # the device kinds, whatever the stages: a kind that cannot load is a UsageError
    cfg, problems = config.read(root, pipeline)
    for stage in stages:  # path settings naming what the project lacks (`hil.tests`, `build.lint`, ...)
        section = cfg.settings(stage.name)
        if hasattr(section, "check_paths"):
            problems += section.check_paths(root, f"{pipeline.config_file}: {stage.name}.")
    if rig is not None and any(s.matrix for s in stages):
        problems += check_rig(root, rig)
    problems += [m.line() for m in missing_tools(stages)]
    if not problems:
        problems += store_problems(root, pipeline)
    return problems


def store_problems(root: Path, pipeline: Pipeline) -> list[str]:
    """A configured S3 store without credentials here (unless hilci.yaml says `store_optional: true`)."""
    from hilci.pipeline import config
    from hilci.store.backend import configured_url, missing_credentials

    cfg = config.load(root, pipeline)
    url = configured_url(root, cfg)
    missing = missing_credentials(url) if url else ""
    return [missing] if missing and not cfg.store_settings.store_optional else []


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

    from hilci.pipeline.project import parse_only, project_from_args

    project = project_from_args(args)
    pipeline, root = project.pipeline, project.root
    only = parse_only(args.only)
    stages = [pipeline.stage(n) for n in only] if only else list(pipeline.stages)
    rig = project.rig(args.rig)
    problems = preflight(root, pipeline, stages, rig)
    for line in problems:
        print(f"hilci: {line}", file=sys.stderr)
    if problems:
        return 2
    tools = sorted({t for s in stages for t in s.needs_tools})
    print(f"ok: {len(stages)} stage{'' if len(stages) == 1 else 's'} ready in {root} (definition, {pipeline.config_file}, rig {rig}"
          + (f", {', '.join(tools)}" if tools else "") + ")")
    return 0
