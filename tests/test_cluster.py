"""`hilci cluster` against kmock's in-memory Kubernetes, with nodes and pods made by the test."""

from __future__ import annotations

import pytest

from hilci import cli
from hilci.kube.cluster import collect, format_view
from hilci.kube.resources import GPU, RIG
from tests.kube_standin import kube  # noqa: F401 - the fixture

pytestmark = [pytest.mark.server]  # what it needs: the fast tier leaves it out

NS = "hilci-ci"


def node(name: str, arch: str, labels: dict, alloc: dict, taints=()) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/arch": arch, **labels}},
            "spec": {"taints": [dict(t) for t in taints]},
            "status": {"allocatable": {"cpu": "8", "memory": "16Gi", **alloc}}}


def pod(name: str, node_name: str | None, phase: str, asks: dict, labels=None, conditions=()) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": labels or {}},
            "spec": {"nodeName": node_name, "containers": [
                {"name": "hilci", "image": "ghcr.io/hilci/hilci-ci:py3.11",
                 "resources": {"requests": dict(asks), "limits": dict(asks)}}]},
            "status": {"phase": phase, "conditions": list(conditions)}}


def make_cluster(core) -> None:
    core.create_node(node("gpu-ws-1", "amd64", {"nvidia.com/gpu.present": "true"}, {GPU: "1"},
                          [{"key": GPU, "value": "present", "effect": "NoSchedule"}]))
    core.create_node(node("jetson-nx-1", "arm64", {"hilci.dev/board": "orin-nx"}, {GPU: "1", RIG: "1"},
                          [{"key": RIG, "value": "orin-nx", "effect": "NoSchedule"}]))
    core.create_node(node("cpu-1", "amd64", {}, {}))
    core.create_namespaced_pod(NS, pod("train-abc", "gpu-ws-1", "Running", {GPU: "1"}))
    core.create_namespaced_pod(NS, pod("hil-orin-nx-1", "jetson-nx-1", "Running", {GPU: "1", RIG: "1"},
                                       {"hilci.dev/board": "orin-nx"}))
    core.create_namespaced_pod(NS, pod("build-xyz", "cpu-1", "Succeeded", {}))
    unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) had untolerated "
                                "taint {hilci.dev/rig: orin-nx}. preemption: 0/3 nodes are available."}
    core.create_namespaced_pod(NS, pod("quantize-def", None, "Pending", {GPU: "1"}, conditions=[unschedulable]))


def test_capacity_holders_and_pending_reasons(kube):  # noqa: F811
    core = kube.core()
    make_cluster(core)
    view = collect(core)
    by = {n.name: n for n in view.nodes}
    jet = by["jetson-nx-1"]
    assert (jet.arch, jet.board, jet.allocatable, jet.requested) == ("arm64", "orin-nx", {GPU: 1, RIG: 1},
                                                                       {GPU: 1, RIG: 1})
    assert jet.taints == ["hilci.dev/rig=orin-nx:NoSchedule"]
    assert jet.pods == [f"{NS}/hil-orin-nx-1 (Running, gpu 1, rig 1)"]
    assert by["gpu-ws-1"].gpu_label == "nvidia.com/gpu.present=true"
    assert by["cpu-1"].pods == []  # a finished pod holds nothing
    assert view.pending == [f"{NS}/quantize-def: waiting for nvidia.com/gpu: 0/3 nodes are available: "
                            "1 Insufficient nvidia.com/gpu, 2 node(s) had untolerated taint {hilci.dev/rig: orin-nx}. "
                            "preemption: 0/3 nodes are available."]
    assert view.conflicts == []
    text = format_view(view)
    assert "jetson-nx-1        arm64  orin-nx        1/1     1/1  hilci.dev/rig=orin-nx:NoSchedule" in text
    assert "CONFLICTS" not in text


def test_two_running_pods_on_one_rig_are_flagged(kube, tmp_path, capsys):  # noqa: F811
    core = kube.core()
    make_cluster(core)
    core.create_namespaced_pod(NS, pod("hil-orin-nx-2", "jetson-nx-1", "Running", {RIG: "1"},
                                       {"hilci.dev/board": "orin-nx"}))
    view = collect(core)
    assert f"rig orin-nx on jetson-nx-1 held by 2 running pods: {NS}/hil-orin-nx-1, {NS}/hil-orin-nx-2" \
        in view.conflicts
    assert "jetson-nx-1: 2 hilci.dev/rig requested by running pods, 1 allocatable" in view.conflicts
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(kube.kubeconfig())
    assert cli.main(["cluster", "--kubeconfig", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "CONFLICTS" in out and "held by 2 running pods" in out


def test_a_missing_kubeconfig_is_a_usage_error(tmp_path, capsys):
    assert cli.main(["cluster", "--kubeconfig", str(tmp_path / "none")]) == 2
    assert "hilci: error: kubeconfig:" in capsys.readouterr().err
