"""`hilci stage NAME` with the store, as a Jenkins pod runs it: restore what it needs, skip when cached, remember.

Used when a store is configured ($HILCI_STORE or `store:` in hilci.yaml) and the caller is not the local runner
(which decides the cache itself and sets HILCI_STAGE_CACHE=0 for its children). In a pod:
1. outputs of the stages it needs that are not in the workspace (no stash: the plan skipped them) are restored
   from their entries;
2. a passed entry for its own key: outputs restored, its JUnit marked "cached from <commit> (<build>)", exit 0;
3. otherwise the stage runs; a pass is saved; every run appends a history record.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from hilci.pipeline.model import Pipeline
from hilci.stage.context import log
from hilci.stage.run import EXIT_FAILED, EXIT_OK, junit_path, load_config, run_stage

ENV_SWITCH = "HILCI_STAGE_CACHE"
# Set by every pod template to the Secret its envFrom reads; optional there, so a pod starts without it.
ENV_STORE_SECRET = "HILCI_STORE_SECRET"


def missing_store_note(url: str | None) -> str | None:
    """The one note for a pod whose template expects a store Secret when no store reached this process."""
    secret = os.environ.get(ENV_STORE_SECRET, "").strip()
    if not secret or url:
        return None
    return (f"no store: the pod template reads Secret '{secret}' (envFrom, optional) but HILCI_STORE is unset: "
            "the Secret is missing from the pod's namespace or lacks HILCI_STORE, so this stage runs as a miss and "
            "caches nothing across builds (docs/store.md; `hilci cluster preflight` checks the Secret)")


def wanted(root: Path, config: dict) -> bool:
    from hilci.store.backend import configured_url

    return os.environ.get(ENV_SWITCH, "1") != "0" and configured_url(root, config) is not None


def run_stage_with_store(root: Path, pipeline: Pipeline, name: str, rig: Path | None, board: str) -> int:
    if os.environ.get(ENV_SWITCH) == "0":  # under `hilci run`: start the stage without loading the store
        return run_stage(root, pipeline, name, rig=rig, board=board)
    config = load_config(root, pipeline)
    if not wanted(root, config):
        from hilci.store.backend import configured_url

        note = missing_store_note(configured_url(root, config))
        if note:
            log(f"note: {note}")
        return run_stage(root, pipeline, name, rig=rig, board=board)
    from hilci.store.keys import cacheable_on
    from hilci.store.session import StoreSession

    stage = pipeline.stage(name)
    rig_file = (root / rig) if rig is not None else None
    session = StoreSession.open(root, pipeline, config)
    try:
        for up in pipeline.needs_closure(stage):
            if not up.outputs or all((root / o).exists() for o in up.outputs) or not up.cacheable:
                continue
            up_board = board if up.matrix else "local"
            key, _ = session.key(up, rig_file, up_board)
            hit = session.lookup(up, key)
            if hit is not None:
                session.cache.restore(hit, up)
                log(f"restored the outputs of {up.name} from {session.display} ({hit.origin})")
            else:  # neither stashed nor stored (evicted, a store that went away): rebuilt here, not missed later
                log(f"the outputs of {up.name} are neither in the workspace nor in {session.display}: "
                    f"rebuilding {up.name} first")
                code = run_stage(root, pipeline, up.name, rig=rig, board=up_board)
                if code != EXIT_OK:
                    log(f"{up.name} (rebuilt for {stage.name}) did not pass (exit {code})")
                    return code
        key, parts = ("", {})
        out = junit_path(root, stage, board)
        if cacheable_on(stage, rig_file):
            key, parts = session.key(stage, rig_file, board)
            hit = session.lookup(stage, key)
            if hit is not None:
                session.cache.restore(hit, stage)
                out.parent.mkdir(parents=True, exist_ok=True)
                session.write_cached_junit(hit, out)
                log(f"{stage.name}: {hit.origin}, restored from {session.display} (key {key[:12]})")
                session.record(stage, status="cached", start=time.time(), duration_s=0.0, key=key,
                               junit_file=out, rig=rig_file, board=board, cached=True)
                return EXIT_OK
        start, t0 = time.time(), time.perf_counter()
        code = run_stage(root, pipeline, name, rig=rig, board=board)
        status = {EXIT_OK: "passed", EXIT_FAILED: "failed"}.get(code, "error")
        if code == EXIT_OK and key:
            stage_log = out.with_suffix(".log")
            stage_log.write_text(f"{stage.name} ran in build {session.origin['build']} "
                                 f"of {session.origin['commit'][:12]}; its console log is in Jenkins\n")
            session.save(stage, key, parts, out, stage_log)
            stage_log.unlink(missing_ok=True)
        if status != "error":
            session.record(stage, status=status, start=start, duration_s=time.perf_counter() - t0, key=key,
                           junit_file=out, rig=rig_file, board=board)
        return code
    finally:
        for note in session.close():
            log(f"note: {note}")
