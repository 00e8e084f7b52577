"""Run in a child process by tests/test_airflow.py, with AIRFLOW_HOME in a tmp folder, so Airflow's settings and
logging never reach the test process. Prints one JSON object on its last line.

  describe DAG_FILE: import errors, each task's upstream ids and trigger rule, each pod task's dry-run pod;
                     the same for the nightly soak DAG (`hilci-soak`) under "soak", with its schedule settings
  run DAG_FILE:      dag.test() (local mode, SQLite): the run's state, each task's state, the report's XCom
"""

from __future__ import annotations

import json
import sys


def describe(path: str) -> dict:
    from airflow.dag_processing.dagbag import DagBag
    from kubernetes.client import ApiClient

    bag = DagBag(dag_folder=path)
    out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dags),
           "warnings": {k: list(map(str, v)) for k, v in bag.captured_warnings.items()}}
    if "hilci" not in bag.dags:
        return out
    out.update(_dag(bag.dags["hilci"], ApiClient()))
    if "hilci-soak" in bag.dags:
        soak = bag.dags["hilci-soak"]
        out["soak"] = {**_dag(soak, ApiClient()), "max_active_runs": soak.max_active_runs, "catchup": soak.catchup}
    return out


def _dag(dag, api) -> dict:
    return {
        "schedule": str(dag.schedule) if hasattr(dag, "schedule") else None,
        "tasks": {t.task_id: {"upstream": sorted(t.upstream_task_ids),
                              "trigger_rule": str(getattr(t.trigger_rule, "value", t.trigger_rule)),
                              "operator": type(t).__name__} for t in dag.tasks},
        "pods": {t.task_id: api.sanitize_for_serialization(t.build_pod_request_obj(dry_run=True))
                 for t in dag.tasks if hasattr(t, "build_pod_request_obj")},
    }


def run(path: str) -> dict:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=path)
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["hilci"]
    dr = dag.test()
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    summary = tis["report"].xcom_pull(task_ids="report") if "report" in tis else None
    return {"state": str(dr.state), "tasks": {k: str(ti.state) for k, ti in tis.items()}, "summary": summary}


if __name__ == "__main__":
    step, path = sys.argv[1], sys.argv[2]
    result = describe(path) if step == "describe" else run(path)
    print(json.dumps(result, default=str))
