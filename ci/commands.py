"""The pipeline commands: `hilci run` (the local runner) and `hilci stage NAME` (one stage, as Jenkins runs it)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from ci.model import DEFAULT_RIG, Pipeline
from ci.stage import UsageError

DEFAULT_PIPELINE = "ci.definition:PIPELINE"


def load_pipeline(spec: str | None = None) -> Pipeline:
    """The pipeline named by `module:attr` (or $HILCI_PIPELINE, or the project's own definition)."""
    spec = spec or os.environ.get("HILCI_PIPELINE") or DEFAULT_PIPELINE
    module_name, _, attr = spec.partition(":")
    try:
        pipeline = getattr(importlib.import_module(module_name), attr or "PIPELINE")
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"pipeline definition {spec!r} cannot be loaded ({exc})") from None
    if not isinstance(pipeline, Pipeline):
        raise UsageError(f"pipeline definition {spec!r} is not a ci.model.Pipeline")
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


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the pipeline locally, stage after stage, with the stage cache")
    run.add_argument("--only", action="append", default=[], metavar="STAGE",
                     help="run only this stage (repeatable, or comma-separated)")
    run.add_argument("--from", dest="start_from", metavar="STAGE", help="start at this stage")
    run.add_argument("--rig", default=None, help=f"rig YAML for the matrix stages (default {DEFAULT_RIG})")
    run.add_argument("--no-cache", action="store_true", help="run every stage, neither reading nor writing the cache")
    add_pipeline_option(run)
    run.add_argument("-n", "--dry-run", action="store_true",
                     help="run nothing: say for each stage whether it would run or be cached, and why")
    run.set_defaults(func=cmd_run)

    stage = sub.add_parser("stage", help="run one stage here (what each Jenkins stage runs)")
    stage.add_argument("name")
    stage.add_argument("--rig", default=None, help="rig YAML (matrix stages)")
    stage.add_argument("--board", default="local", help="Jetson board of the matrix branch (Jenkins)")
    stage.set_defaults(func=cmd_stage)

    stages = sub.add_parser("stages", help="list the pipeline's stages")
    stages.set_defaults(func=cmd_stages)


def cmd_run(args: argparse.Namespace) -> int:
    from ci.doctor import preflight
    from ci.local.runner import LocalRunner, RunOptions

    spec = args.pipeline or os.environ.get("HILCI_PIPELINE") or ""
    if args.dry_run:
        from ci.store.cli import cmd_plan

        args.json, args.jenkins = False, False
        return cmd_plan(args)
    pipeline, root = pipeline_and_root(args)
    only = parse_only(args.only)
    stages = pipeline.select(only, args.start_from)
    rig = Path(args.rig or pipeline.default_rig)
    problems = preflight(root, pipeline, stages, rig)
    if problems:  # everything wrong, named at once, before minutes of earlier stages
        for line in problems:
            print(f"hilci: error: {line}", file=sys.stderr)
        if len(problems) > 1:
            print(f"hilci: {len(problems)} problems found before the first stage; nothing was run",
                  file=sys.stderr)
        return 2
    options = RunOptions(only=only, start_from=args.start_from, rig=rig, use_cache=not args.no_cache,
                         pipeline_spec=spec)
    return LocalRunner(root, pipeline, options).run()


def cmd_stage(args: argparse.Namespace) -> int:
    from ci.store.stagerun import run_stage_with_store

    pipeline = load_pipeline()
    pipeline.stage(args.name)
    return run_stage_with_store(project_root(), pipeline, args.name, rig=Path(args.rig) if args.rig else None,
                                board=args.board)


def cmd_stages(args: argparse.Namespace) -> int:
    pipeline = load_pipeline()
    for s in pipeline.stages:
        where = "jetson-<board> (matrix)" if s.matrix else s.pod
        print(f"{s.name:<10} {where:<24} {s.does}")
    return 0
