"""Finding the project and its pipeline: the one path every command takes to its root, pipeline, rig and stages.

A project names its pipeline once, as `module:attr`: `pipeline:` in hilci.yaml or `pipeline = ...` under
`[tool.hilci]` in pyproject.toml (`--pipeline` and $HILCI_PIPELINE override it for one run). The module is
imported with the project's root first on sys.path, so a module of the project's own repository imports
whatever else the repository holds. With nothing named, a command says how to name one (exit 2): hilci's own
example pipeline is used only where hilci's own hilci.yaml names it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hilci.errors import UsageError, YamlFileError
from hilci.pipeline.model import Board, Pipeline, Stage
from hilci.util.yamlfile import load_yaml

CONFIG_FILE = "hilci.yaml"
PYPROJECT = "pyproject.toml"
PIPELINE_KEY = "pipeline"  # hilci.yaml / [tool.hilci]: the pipeline definition, "module:attr"
KINDS_KEY = "kinds"  # hilci.yaml / [tool.hilci]: the project's own device-kind modules (hilci.hil.discovery)
BOARDS_KEY = "boards"  # hilci.yaml / [tool.hilci]: board name -> rig YAML; replaces the definition's boards
HOW_TO_NAME = (f"name the pipeline: put 'pipeline: mypackage.pipeline:PIPELINE' in {CONFIG_FILE} (or "
               f"'pipeline = \"...\"' under [tool.hilci] in {PYPROJECT}), or start a project with `hilci init`")


@dataclass(frozen=True)
class ProjectSettings:
    """What a project says about itself, before any stage: its pipeline and its device-kind modules."""

    pipeline: str = ""
    kinds: tuple[str, ...] = ()
    boards: tuple[Board, ...] = ()
    source: str = ""  # the file it was read from ("" when there is none)


@dataclass
class Project:
    """A project's root, the pipeline it runs and where that pipeline was named."""

    root: Path
    pipeline: Pipeline
    spec: str
    source: str  # "hilci.yaml", "pyproject.toml", "--pipeline" or "$HILCI_PIPELINE"
    settings: ProjectSettings = field(default_factory=ProjectSettings)

    def describe(self) -> str:
        return f"hilci: pipeline {self.spec} ({self.source})"

    def stages(self, only: list[str] | tuple[str, ...] = (), start_from: str | None = None) -> list[Stage]:
        """The stages `--only` and `--from` pick (an empty `--only ""` refused, as everywhere)."""
        return self.pipeline.select(parse_only(list(only)), start_from)

    def rig(self, rig: str | None) -> Path:
        """`--rig`, else the pipeline's own default rig."""
        return Path(rig or self.pipeline.default_rig)


def read_settings(root: Path) -> ProjectSettings:
    """`pipeline` and `kinds` from hilci.yaml, else from pyproject.toml's [tool.hilci] (a bad value: UsageError)."""
    path = root / CONFIG_FILE
    if path.is_file():
        try:
            data = load_yaml(path) or {}
        except YamlFileError as exc:
            raise UsageError(str(exc).replace(str(path), CONFIG_FILE, 1)) from None
        if isinstance(data, dict) and any(k in data for k in (PIPELINE_KEY, KINDS_KEY, BOARDS_KEY)):
            return _settings(data, CONFIG_FILE)
    data = _tool_hilci(root / PYPROJECT)
    if data:
        return _settings(data, f"{PYPROJECT} [tool.hilci]")
    return ProjectSettings()


def _settings(data: dict, source: str) -> ProjectSettings:
    spec = data.get(PIPELINE_KEY) or ""
    if not isinstance(spec, str) or (spec and ":" not in spec):
        raise UsageError(f"{source}: {PIPELINE_KEY}: expected 'module:attr', got {spec!r}"[:200])
    kinds = data.get(KINDS_KEY) or []
    if not isinstance(kinds, list) or not all(isinstance(k, str) and k.strip() for k in kinds):
        raise UsageError(f"{source}: {KINDS_KEY}: expected a list of module names, got {kinds!r}"[:200])
    boards = data.get(BOARDS_KEY) or {}
    if not isinstance(boards, dict) or not all(isinstance(n, str) and n.replace("-", "").isalnum()
                                               and isinstance(r, str) and r for n, r in boards.items()):
        raise UsageError(f"{source}: {BOARDS_KEY}: expected board names (letters, digits, '-') mapped to rig "
                         f"YAML paths, got {boards!r}"[:200])
    return ProjectSettings(spec.strip(), tuple(k.strip() for k in kinds),
                           tuple(Board(n, r) for n, r in boards.items()), source)


def _tool_hilci(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    text = path.read_text()
    if "[tool.hilci]" not in text:
        return {}
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise UsageError(f"{PYPROJECT}: [tool.hilci] needs Python 3.11 or the tomli package to be read; "
                             f"name the pipeline in {CONFIG_FILE} instead") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{PYPROJECT}: {exc}") from None
    section = data.get("tool", {}).get("hilci", {})
    return section if isinstance(section, dict) else {}


def load_pipeline(spec: str, root: Path | None = None, source: str = "") -> Pipeline:
    """The pipeline `module:attr` names, imported with the project's root first on sys.path."""
    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module_name, _, attr = spec.partition(":")
    where = f"{source}: {PIPELINE_KEY}: " if source else ""
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a user's module may fail in any way: one line, naming where it was named
        raise UsageError(f"{where}pipeline definition {spec!r} cannot be loaded "
                         f"({type(exc).__name__}: {exc})") from None
    pipeline = getattr(module, attr or "PIPELINE", None)
    if pipeline is None:
        raise UsageError(f"{where}pipeline definition {spec!r} cannot be loaded "
                         f"({module_name} has no {attr or 'PIPELINE'})")
    if not isinstance(pipeline, Pipeline):
        raise UsageError(f"{where}pipeline definition {spec!r} is not a hilci.pipeline.model.Pipeline")
    return pipeline


def project_root() -> Path:
    """$HILCI_ROOT (set by the runner for its stages), else the working directory."""
    return Path(os.environ.get("HILCI_ROOT") or Path.cwd()).resolve()


def _is_project(folder: Path, config_file: str = CONFIG_FILE, podtemplates: str = "podtemplates") -> bool:
    return ((folder / config_file).is_file() or (folder / podtemplates).is_dir()
            or bool(_has_tool_hilci(folder / PYPROJECT)))


def _has_tool_hilci(path: Path) -> bool:
    try:
        return path.is_file() and "[tool.hilci]" in path.read_text()
    except OSError:
        return False


def find_root(pipeline: Pipeline | None = None, start: Path | None = None) -> Path:
    """The project's root: $HILCI_ROOT, else the working directory or the nearest folder above it holding
    hilci.yaml, pod templates or a pyproject.toml with [tool.hilci], so that hilci works from a subfolder."""
    if os.environ.get("HILCI_ROOT"):
        return project_root()
    config_file = pipeline.config_file if pipeline else CONFIG_FILE
    podtemplates = pipeline.podtemplates_dir if pipeline else "podtemplates"
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if _is_project(folder, config_file, podtemplates):
            return folder
    raise UsageError(f"no {config_file} or {podtemplates}/ in {here} or above it: "
                     "run hilci in the project's root folder")


def open_project(spec: str | None = None, start: Path | None = None, announce: bool = True,
                 to_stderr: bool = False) -> Project:
    """Root, pipeline and where it was named: `spec` (--pipeline), $HILCI_PIPELINE, hilci.yaml, pyproject.toml.
    Says which pipeline runs (one line) on stdout, or on stderr for a command whose stdout is data; a problem
    is a UsageError, its one line on stderr."""
    root = find_root(None, start)
    settings = read_settings(root)
    if spec:
        source = "--pipeline"
    elif os.environ.get("HILCI_PIPELINE"):
        spec, source = os.environ["HILCI_PIPELINE"], "$HILCI_PIPELINE"
    elif settings.pipeline:
        spec, source = settings.pipeline, settings.source
    else:
        raise UsageError(f"no pipeline named in {root}: {HOW_TO_NAME}")
    pipeline = load_pipeline(spec, root, source)
    if settings.boards:  # a board is added in config, not by editing the definition
        pipeline = dataclasses.replace(pipeline, boards=settings.boards)
    project = Project(root, pipeline, spec, source, settings)
    if announce:
        print(project.describe(), file=sys.stderr if to_stderr else sys.stdout, flush=True)
    return project


def add_pipeline_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", default=None,
                        help="pipeline definition as module:attr for this run (default: $HILCI_PIPELINE, else "
                             f"'{PIPELINE_KEY}:' in {CONFIG_FILE} or [tool.hilci] in {PYPROJECT})")


def project_from_args(args: argparse.Namespace, data_on_stdout: bool = False) -> Project:
    """The project a command runs in, its pipeline named by `--pipeline` or the project: every command's start."""
    return open_project(getattr(args, "pipeline", None), to_stderr=data_on_stdout)


def parse_only(items: list[str]) -> tuple[str, ...]:
    """`--only a,b --only c` as names; an empty name (`--only ""`) is a usage error."""
    names = tuple(n.strip() for item in items for n in item.split(","))
    if any(not n for n in names):
        raise UsageError("--only needs stage names (got an empty one)")
    return names
