"""What a local run leaves in reports/ once it ends: run.json (each stage's outcome, the store's figures) and,
from every stage's JUnit plus the regression gates, the merged junit.xml and index.html."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from hilci.pipeline.model import Pipeline, StageOutcome
from hilci.stage.run import junit_path
from hilci.store.session import StoreSession


def write_run_reports(root: Path, pipeline: Pipeline, outcomes: list[StageOutcome], store: StoreSession) -> None:
    from hilci.report.html import write_reports

    run_file = root / "reports" / "run.json"
    run_file.write_text(json.dumps({"stages": [asdict(o) for o in outcomes], "store": store.stats()}, indent=1))
    files = [junit_path(root, pipeline.stage(o.name)) for o in outcomes]
    gated = store.gates_junit(root / "reports" / "junit" / "regressions.xml")
    write_reports(root, [f for f in files if f.is_file()] + ([gated] if gated else []), outcomes,
                  trends=store.trends(), rigs=store.rig_health())
