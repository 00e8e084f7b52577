"""Finding the project and its pipeline: the one path every command takes to its root, pipeline, rig and stages."""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

from hilci.errors import UsageError
from hilci.pipeline.model import Pipeline

DEFAULT_PIPELINE = "hilci.example:PIPELINE"


def load_pipeline(spec: str | None = None) -> Pipeline:
    """The pipeline named by `module:attr` (or $HILCI_PIPELINE, or the project's own definition)."""
    spec = spec or os.environ.get("HILCI_PIPELINE") or DEFAULT_PIPELINE
    module_name, _, attr = spec.partition(":")
    try:
        pipeline = getattr(importlib.import_module(module_name), attr or "PIPELINE")
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"pipeline definition {spec!r} cannot be loaded ({exc})") from None
    if not isinstance(pipeline, Pipeline):
        raise UsageError(f"pipeline definition {spec!r} is not a hilci.pipeline.model.Pipeline")
    return pipeline


def project_root() -> Path:
    """$HILCI_ROOT (set by the runner for its stages), else the working directory."""
    return Path(os.environ.get("HILCI_ROOT") or Path.cwd()).resolve()


def find_root(pipeline: Pipeline, start: Path | None = None) -> Path:
    """The project's root: $HILCI_ROOT, else the working directory or the nearest folder above it holding the
    pipeline's hilci.yaml or pod templates, so that `hilci run` works from a subfolder."""
    if os.environ.get("HILCI_ROOT"):
        return project_root()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / pipeline.config_file).is_file() or (folder / pipeline.podtemplates_dir).is_dir():
            return folder
    raise UsageError(f"no {pipeline.config_file} or {pipeline.podtemplates_dir}/ in {here} or above it: "
                     "run hilci in the project's root folder")


def add_pipeline_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", default=None,
                        help="pipeline definition as module:attr (default: $HILCI_PIPELINE, else the project's)")


def pipeline_and_root(args: argparse.Namespace) -> tuple[Pipeline, Path]:
    """The pipeline `--pipeline` names and the project root it is run in: what every command starts from."""
    pipeline = load_pipeline(getattr(args, "pipeline", None))
    return pipeline, find_root(pipeline)


def parse_only(items: list[str]) -> tuple[str, ...]:
    """`--only a,b --only c` as names; an empty name (`--only ""`) is a usage error."""
    names = tuple(n.strip() for item in items for n in item.split(","))
    if any(not n for n in names):
        raise UsageError("--only needs stage names (got an empty one)")
    return names
