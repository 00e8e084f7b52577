"""`hilci cluster` allocation records against kmock: rig health, who holds each rig and GPU and since when, busy
shares over a period from live pods and the events of deleted ones, and double allocations flagged."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hilci import cli
from hilci.kube.cluster import format_records, parse_period, records
from hilci.kube.resources import GPU, RIG
from hilci.kube.usage import Hold, busy_share, overlaps
from tests.kube_standin import kube  # noqa: F401 - the fixture

pytestmark = [pytest.mark.server]  # what it needs: the fast tier leaves it out

NS = "hilci-ci"
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def stamp(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def node(name: str, board: str | None, capacity: dict, allocatable: dict) -> dict:
    labels = {"kubernetes.io/arch": "arm64" if board else "amd64", **({"hilci.dev/board": board} if board else {})}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"capacity": {"cpu": "8", **capacity}, "allocatable": {"cpu": "8", **allocatable}}}


def pod(name: str, node_name: str, asks: dict, started_h: float, finished_h: float | None = None,
        build: str = "") -> dict:
    status = {"phase": "Running" if finished_h is None else "Succeeded", "startTime": stamp(started_h)}
    if finished_h is not None:
        status["containerStatuses"] = [{"name": "hilci", "ready": False, "restartCount": 0, "image": "x",
                                        "imageID": "", "state": {"terminated": {
                                            "exitCode": 0, "finishedAt": stamp(finished_h)}}}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "annotations": {"runUrl": build} if build else {}},
            "spec": {"nodeName": node_name, "containers": [{"name": "hilci", "image": "x", "resources": {
                "requests": dict(asks), "limits": dict(asks)}}]},
            "status": status}


def event(name: str, pod_name: str, reason: str, hours_ago: float, node_name: str = "") -> dict:
    message = f"Successfully assigned {NS}/{pod_name} to {node_name}" if reason == "Scheduled" else \
        "Stopping container hilci"
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": NS},
            "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": NS}, "reason": reason,
            "message": message, "firstTimestamp": stamp(hours_ago), "lastTimestamp": stamp(hours_ago),
            "type": "Normal"}


def make_cluster(core) -> None:
    core.create_node(node("jetson-nx-1", "orin-nx", {GPU: "1", RIG: "1"}, {GPU: "1", RIG: "1"}))
    core.create_node(node("jetson-agx-1", "agx-orin", {GPU: "1", RIG: "1"}, {GPU: "1", RIG: "0"}))
    core.create_node(node("gpu-ws-1", None, {GPU: "1"}, {GPU: "1"}))
    core.create_node(node("cpu-1", None, {}, {}))
    # now: a HIL pod holds the orin-nx rig since half an hour, for build 42
    core.create_namespaced_pod(NS, pod("hil-nx-42", "jetson-nx-1", {GPU: "1", RIG: "1"}, 0.5,
                                       build="job/hilci/job/main/42/"))
    # earlier: a HIL pod Jenkins already deleted held the same rig from 3 h to 2 h ago (its events remain)
    core.create_namespaced_event(NS, event("e1", "hil-nx-41", "Scheduled", 3.0, "jetson-nx-1"))
    core.create_namespaced_event(NS, event("e2", "hil-nx-41", "Killing", 2.0))
    # a training pod held the GPU from 3 h to 1 h ago and is finished
    core.create_namespaced_pod(NS, pod("train-40", "gpu-ws-1", {GPU: "1"}, 3.0, 1.0))
    # on the AGX rig, two deleted pods overlapped: 2.5-1.5 h and 2.0-1.0 h ago
    core.create_namespaced_event(NS, event("e3", "hil-agx-7", "Scheduled", 2.5, "jetson-agx-1"))
    core.create_namespaced_event(NS, event("e4", "hil-agx-7", "Killing", 1.5))
    core.create_namespaced_event(NS, event("e5", "hil-agx-8", "Scheduled", 2.0, "jetson-agx-1"))
    core.create_namespaced_event(NS, event("e6", "hil-agx-8", "Killing", 1.0))


def test_records_show_health_holders_busy_shares_and_double_allocation(kube):  # noqa: F811
    core = kube.core()
    make_cluster(core)
    recs = {(r.kind, r.name): r for r in records(core, NS, timedelta(hours=4), now=NOW)}
    assert set(recs) == {("rig", "orin-nx"), ("rig", "agx-orin"), ("gpu", "jetson-nx-1"), ("gpu", "jetson-agx-1"),
                         ("gpu", "gpu-ws-1")}
    nx = recs[("rig", "orin-nx")]
    assert nx.health == "Healthy"
    assert [(h.pod, h.build) for h in nx.holders] == [(f"{NS}/hil-nx-42", "job/hilci/job/main/42/")]
    assert nx.holders[0].since == NOW - timedelta(hours=0.5)
    assert nx.busy == pytest.approx((1.0 + 0.5) / 4)  # the deleted pod's hour plus the running half hour
    assert nx.doubles == []
    agx = recs[("rig", "agx-orin")]
    assert agx.health == "Unhealthy (0 of 1 allocatable)" and agx.holders == []
    assert agx.busy == pytest.approx(1.5 / 4)  # 2.5 h to 1.0 h ago, the overlap counted once
    assert agx.doubles == [(f"{NS}/hil-agx-7", f"{NS}/hil-agx-8")]
    gpu = recs[("gpu", "gpu-ws-1")]
    assert gpu.holders == [] and gpu.busy == pytest.approx(2 / 4)
    text = format_records(list(recs.values()), timedelta(hours=4))
    assert f"DOUBLE ALLOCATION: rig agx-orin held by {NS}/hil-agx-7 and {NS}/hil-agx-8 at once" in text
    assert "(build job/hilci/job/main/42/) since" in text


def test_the_cli_prints_records_and_exits_1_on_a_double_allocation(kube, tmp_path, capsys):  # noqa: F811
    make_cluster(kube.core())
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(kube.kubeconfig())
    assert cli.main(["cluster", "--kubeconfig", str(cfg), "--period", "4h"]) == 1
    out = capsys.readouterr().out
    assert "rig orin-nx" in out and "Unhealthy (0 of 1 allocatable)" in out and "DOUBLE ALLOCATION" in out
    assert cli.main(["cluster", "--kubeconfig", str(cfg), "--period", "50m"]) == 0  # the overlap is older
    assert cli.main(["cluster", "--kubeconfig", str(cfg), "--period", "soon"]) == 2
    assert "--period 'soon'" in capsys.readouterr().err


def test_busy_share_and_overlaps_on_plain_intervals():
    holds = [Hold("a", 0, 10), Hold("b", 5, 15), Hold("c", 20, None)]
    assert busy_share(holds, 0, 30) == pytest.approx((15 + 10) / 30)
    assert overlaps(holds, 0, 30) == [("a", "b")]
    assert overlaps(holds, 12, 30) == []
    assert parse_period("90m") == timedelta(minutes=90) and parse_period("2d") == timedelta(days=2)
