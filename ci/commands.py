"""The pipeline commands: `hilci run` (the local runner) and `hilci stage NAME` (one stage, as Jenkins runs it)."""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

from ci.model import Pipeline
from ci.stage import UsageError

DEFAULT_PIPELINE = "ci.definition:PIPELINE"
DEFAULT_RIG = "hil_tests/rigs/sim.yaml"


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
    return Path(os.environ.get("HILCI_ROOT") or Path.cwd()).resolve()


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the pipeline locally, stage after stage, with the stage cache")
    run.add_argument("--only", action="append", default=[], metavar="STAGE",
                     help="run only this stage (repeatable, or comma-separated)")
    run.add_argument("--from", dest="start_from", metavar="STAGE", help="start at this stage")
    run.add_argument("--rig", default=DEFAULT_RIG, help=f"rig YAML for the matrix stages (default {DEFAULT_RIG})")
    run.add_argument("--no-cache", action="store_true", help="run every stage, neither reading nor writing the cache")
    run.add_argument("--pipeline", default=None, help="pipeline definition as module:attr (default: the project's)")
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
    from ci.local.runner import LocalRunner, RunOptions

    root = project_root()
    spec = args.pipeline or os.environ.get("HILCI_PIPELINE") or ""
    if args.dry_run:
        from ci.store.cli import cmd_plan

        args.json, args.jenkins = False, False
        return cmd_plan(args)
    pipeline = load_pipeline(spec or None)
    only = tuple(n.strip() for item in args.only for n in item.split(",") if n.strip())
    options = RunOptions(only=only, start_from=args.start_from, rig=Path(args.rig) if args.rig else None,
                         use_cache=not args.no_cache, pipeline_spec=spec)
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
