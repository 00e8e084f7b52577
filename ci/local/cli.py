"""Running on this machine: `hilci run` (the whole pipeline, with the stage cache; `-n` the plan only),
`hilci stage NAME` (one stage here, as each Jenkins stage runs it in its pod) and `hilci stages` (the list)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hilci.errors import UsageError
from hilci.local.schedule import default_jobs
from hilci.pipeline.model import DEFAULT_RIG
from hilci.pipeline.project import add_pipeline_option, parse_only, project_from_args


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the pipeline locally, each stage once its needs are ready, with the "
                                     "stage cache")
    run.add_argument("--only", action="append", default=[], metavar="STAGE",
                     help="run only this stage (repeatable, or comma-separated)")
    run.add_argument("--from", dest="start_from", metavar="STAGE", help="start at this stage")
    run.add_argument("--rig", default=None, help=f"rig YAML for the matrix stages (default {DEFAULT_RIG})")
    run.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                     help="jobs at once at most, each stage taking its `jobs` weight (1 unless the definition "
                          f"says more; 'all': it runs alone) (default: one per CPU, here {default_jobs()}); "
                          "1 runs the stages one after another in pipeline order")
    run.add_argument("--no-cache", action="store_true", help="run every stage, neither reading nor writing the cache")
    add_pipeline_option(run)
    run.add_argument("-n", "--dry-run", action="store_true",
                     help="run nothing: say for each stage whether it would run or be cached, and why")
    run.set_defaults(func=cmd_run)

    stage = sub.add_parser("stage", help="run one stage here (what each Jenkins stage runs)")
    stage.add_argument("name")
    stage.add_argument("--rig", default=None, help="rig YAML (matrix stages)")
    stage.add_argument("--board", default="local", help="Jetson board of the matrix branch (Jenkins)")
    add_pipeline_option(stage)
    stage.set_defaults(func=cmd_stage)

    stages = sub.add_parser("stages", help="list the pipeline's stages")
    add_pipeline_option(stages)
    stages.set_defaults(func=cmd_stages)


def cmd_run(args: argparse.Namespace) -> int:
    from hilci.doctor import preflight
    from hilci.local.runner import LocalRunner, RunOptions

    if args.dry_run:  # the plan, through the same path as the run: root, pipeline, rig and --only
        from hilci.store.cli import cmd_plan

        args.json, args.jenkins = False, False
        return cmd_plan(args)
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1 (got {args.jobs})")
    project = project_from_args(args)
    pipeline, root, spec = project.pipeline, project.root, project.spec
    only = parse_only(args.only)
    stages = project.stages(args.only, args.start_from)
    rig = project.rig(args.rig)
    problems = preflight(root, pipeline, stages, rig)
    if problems:  # everything wrong, named at once, before minutes of earlier stages
        for line in problems:
            print(f"hilci: error: {line}", file=sys.stderr)
        if len(problems) > 1:
            print(f"hilci: {len(problems)} problems found before the first stage; nothing was run",
                  file=sys.stderr)
        return 2
    options = RunOptions(only=only, start_from=args.start_from, rig=rig, use_cache=not args.no_cache,
                         pipeline_spec=spec, jobs=args.jobs or default_jobs())
    return LocalRunner(root, pipeline, options).run()


def cmd_stage(args: argparse.Namespace) -> int:
    from hilci.store.stagerun import run_stage_with_store

    project = project_from_args(args)
    project.pipeline.stage(args.name)
    return run_stage_with_store(project.root, project.pipeline, args.name,
                                rig=Path(args.rig) if args.rig else None, board=args.board)


def cmd_stages(args: argparse.Namespace) -> int:
    pipeline = project_from_args(args).pipeline
    for s in pipeline.stages:
        where = "jetson-<board> (matrix)" if s.matrix else s.pod
        print(f"{s.name:<10} {where:<24} {s.does}")
    return 0
