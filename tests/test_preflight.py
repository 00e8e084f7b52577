"""`hilci cluster preflight` against kmock holding the cluster docs/cluster.md builds, and clusters each built
wrong in one way.

The docs' cluster is read from the docs themselves: each `# node: NAME (ARCH)` block's K3s command gives the
node's labels and taints; a device plugin's DaemonSet (NVIDIA's chart with deploy/helm's values, ours from
deploy/rig-device-plugin.yaml) advertises its resource only on the nodes it would be scheduled on, decided with
the same toleration and label rules the scheduler uses. So a doc that forgets a label or a toleration fails here.
"""

from __future__ import annotations

import http.server
import re
import shlex
import threading
from pathlib import Path

import pytest
import yaml

from hilci import cli
from hilci.kube.preflight import tolerates
from hilci.kube.resources import GPU, RIG
from tests.kube_standin import kube  # noqa: F401 - the fixture

pytestmark = [pytest.mark.server]  # what it needs: the fast tier leaves it out

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "cluster.md"
# NVIDIA's chart (v0.13+) schedules onto nodes with any of these labels (its default node affinity).
NVIDIA_CHART_NODE_LABELS = {"feature.node.kubernetes.io/pci-10de.present": "true",
                            "feature.node.kubernetes.io/cpu-model.vendor_id": "NVIDIA",
                            "nvidia.com/gpu.present": "true"}
CAPACITY = {"amd64": {"cpu": "16", "memory": "64Gi", "ephemeral-storage": "200Gi", "pods": "110"},
            "arm64": {"cpu": "12", "memory": "32Gi", "ephemeral-storage": "100Gi", "pods": "110"}}


def docs_nodes() -> list[dict]:
    """The nodes docs/cluster.md creates: name, arch, and the labels and taints of its K3s command."""
    text = re.sub(r"\\\n\s*", " ", DOCS.read_text())
    nodes = []
    for m in re.finditer(r"# node: (\S+) \((amd64|arm64)\)\n(.*?k3s.*?)\n", text):
        words = shlex.split(m.group(3))
        labels = {"kubernetes.io/arch": m.group(2), "kubernetes.io/hostname": m.group(1)}
        taints = []
        for flag, value in zip(words, words[1:], strict=False):
            if flag == "--node-label":
                key, _, val = value.partition("=")
                labels[key] = val
            elif flag == "--node-taint":
                kv, _, effect = value.partition(":")
                key, _, val = kv.partition("=")
                taints.append({"key": key, "value": val, "effect": effect})
        nodes.append({"name": m.group(1), "arch": m.group(2), "labels": labels, "taints": taints})
    return nodes


def nvidia_values() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "helm" / "nvidia-device-plugin.values.yaml").read_text())


def rig_daemonset() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "rig-device-plugin.yaml").read_text())["spec"]["template"]["spec"]


def runs_on(node: dict, tolerations: list[dict], wants) -> bool:
    untolerated = [t for t in node["taints"] if t["effect"] in ("NoSchedule", "NoExecute")
                   and not tolerates(tolerations, t)]
    return not untolerated and wants(node["labels"])


def build(core, nodes: list[dict], *, nvidia: dict, rig_ds: dict, runtime_classes=("nvidia",)) -> None:
    """Create the nodes with what the device plugins that would run on them advertise, and the RuntimeClasses."""
    from kubernetes import client

    rig_keys = [e["key"] for t in rig_ds["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"] for e in t["matchExpressions"] if e["operator"] == "Exists"]
    for n in nodes:
        alloc = dict(CAPACITY[n["arch"]])
        if runs_on(n, nvidia.get("tolerations", []),
                   lambda labels: any(labels.get(k) == v for k, v in NVIDIA_CHART_NODE_LABELS.items())):
            alloc[GPU] = "1"
        if runs_on(n, rig_ds.get("tolerations", []), lambda labels: all(k in labels for k in rig_keys)):
            alloc[RIG] = "1"  # one rig YAML in the node's /etc/hilci/rigs
        core.create_node({"apiVersion": "v1", "kind": "Node",
                          "metadata": {"name": n["name"], "labels": n["labels"]},
                          "spec": {"taints": n["taints"], "unschedulable": n.get("unschedulable", False)},
                          "status": {"capacity": alloc, "allocatable": alloc}})
    nodeapi = client.NodeV1Api(core.api_client)
    for name in runtime_classes:  # K3s creates `nvidia` when it finds the NVIDIA container runtime
        nodeapi.create_runtime_class({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                                      "metadata": {"name": name}, "handler": name})


def preflight(kube, tmp_path, capsys) -> tuple[int, str]:  # noqa: F811
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(kube.kubeconfig())
    rc = cli.main(["cluster", "preflight", "--kubeconfig", str(cfg), "--root", str(ROOT)])
    return rc, capsys.readouterr().out


def test_the_docs_build_the_four_nodes_the_pipeline_needs():
    nodes = {n["name"]: n for n in docs_nodes()}
    assert set(nodes) == {"k3s-server", "gpu-ws-1", "jetson-orin-nx-1", "jetson-agx-orin-1"}
    assert nodes["jetson-orin-nx-1"]["taints"] == [{"key": "hilci.dev/rig", "value": "orin-nx",
                                                    "effect": "NoSchedule"}]


def test_the_cluster_the_docs_build_schedules_every_pod_template(kube, tmp_path, capsys):  # noqa: F811
    build(kube.core(), docs_nodes(), nvidia=nvidia_values(), rig_ds=rig_daemonset())
    rc, out = preflight(kube, tmp_path, capsys)
    assert rc == 0, out
    assert "cpu: schedulable on k3s-server\n" in out  # the GPU and Jetson taints keep CPU pods away
    assert "gpu: schedulable on gpu-ws-1\n" in out
    assert "jetson-orin-nx: schedulable on jetson-orin-nx-1\n" in out
    assert "jetson-agx-orin: schedulable on jetson-agx-orin-1" in out


def _without_label(key: str, node: str):
    def mutate(nodes, nvidia, rig_ds):
        next(n for n in nodes if n["name"] == node)["labels"].pop(key)
    return mutate


def _nvidia_without_rig_toleration(nodes, nvidia, rig_ds):
    nvidia["tolerations"] = [t for t in nvidia["tolerations"] if t["key"] != "hilci.dev/rig"]


def _no_rig_plugin(nodes, nvidia, rig_ds):
    rig_ds["tolerations"] = []  # as if not installed: it runs nowhere the rig lives


def _taint_typo(nodes, nvidia, rig_ds):
    next(n for n in nodes if n["name"] == "jetson-orin-nx-1")["taints"][0]["value"] = "orin_nx"


def _cordoned(nodes, nvidia, rig_ds):
    next(n for n in nodes if n["name"] == "gpu-ws-1")["unschedulable"] = True


@pytest.mark.parametrize("mutate, template, expected", [
    (_without_label("nvidia.com/gpu.present", "jetson-orin-nx-1"), "jetson-orin-nx",
     ["jetson-orin-nx-1: Insufficient nvidia.com/gpu (asks 1, allocatable 0)",
      "hint: jetson-orin-nx-1 has no allocatable nvidia.com/gpu: NVIDIA's device plugin"]),
    (_nvidia_without_rig_toleration, "jetson-agx-orin",
     ["jetson-agx-orin: NOT schedulable: 0/4 nodes are available: 1 Insufficient nvidia.com/gpu, 3 node(s) "
      "didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {hilci.dev/rig: orin-nx}, "
      "1 node(s) had untolerated taint {nvidia.com/gpu: present}.",
      "jetson-agx-orin-1: Insufficient nvidia.com/gpu (asks 1, allocatable 0)"]),
    (_no_rig_plugin, "jetson-orin-nx",
     ["jetson-orin-nx-1: Insufficient hilci.dev/rig (asks 1, allocatable 0)",
      "hint: jetson-orin-nx-1 has no allocatable hilci.dev/rig: the rig device plugin"]),
    (_without_label("hilci.dev/board", "jetson-orin-nx-1"), "jetson-orin-nx",
     ["jetson-orin-nx-1: node(s) didn't match Pod's node affinity/selector (missing label "
      "hilci.dev/board=orin-nx)"]),
    (_taint_typo, "jetson-orin-nx",
     ["jetson-orin-nx-1: node(s) had untolerated taint {hilci.dev/rig: orin_nx}"]),
    (_cordoned, "gpu", ["gpu-ws-1: node(s) were unschedulable (cordoned)"]),
], ids=["jetson-unlabelled-for-nvidia", "nvidia-plugin-not-tolerating-rigs", "no-rig-plugin",
        "jetson-without-board", "taint-typo", "gpu-node-cordoned"])
def test_a_cluster_built_wrong_in_one_way_is_explained(kube, tmp_path, capsys, mutate, template,  # noqa: F811
                                                       expected):
    nodes, nvidia, rig_ds = docs_nodes(), nvidia_values(), rig_daemonset()
    mutate(nodes, nvidia, rig_ds)
    build(kube.core(), nodes, nvidia=nvidia, rig_ds=rig_ds)
    rc, out = preflight(kube, tmp_path, capsys)
    assert rc == 1, out
    assert f"{template}: NOT schedulable: 0/4 nodes are available" in out
    for line in expected:
        assert line in out, out
    broken = {line.split(":", 1)[0] for line in out.splitlines() if ": NOT schedulable" in line}
    # one mistake breaks one kind of pod: a Jetson one (both boards when the mistake is cluster-wide), or gpu
    cluster_wide = mutate in (_nvidia_without_rig_toleration, _no_rig_plugin)
    assert broken == ({"jetson-orin-nx", "jetson-agx-orin"} if cluster_wide else {template}), out


def test_a_missing_runtimeclass_rejects_every_gpu_pod(kube, tmp_path, capsys):  # noqa: F811
    build(kube.core(), docs_nodes(), nvidia=nvidia_values(), rig_ds=rig_daemonset(), runtime_classes=())
    rc, out = preflight(kube, tmp_path, capsys)
    assert rc == 1
    for template in ("gpu", "jetson-orin-nx", "jetson-agx-orin"):
        assert f'{template}: NOT schedulable: pod rejected: RuntimeClass "nvidia" not found' in out
    assert "cpu: schedulable on k3s-server" in out


class _Forbidden(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server API
        body = b'{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,' \
               b'"message":"nodes is forbidden: User \\"alice\\" cannot list resource \\"nodes\\""}'
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(f"apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{{name: c, cluster: "
                   f"{{server: '{server}'}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: u}}}}]\n"
                   "users: [{name: u, user: {token: not-a-secret}}]\n")
    return cfg


def test_forbidden_by_rbac_is_one_line_and_exit_2(tmp_path, capsys):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Forbidden)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = _kubeconfig(tmp_path, f"http://127.0.0.1:{server.server_address[1]}")
        assert cli.main(["cluster", "preflight", "--kubeconfig", str(cfg), "--root", str(ROOT)]) == 2
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("hilci: error: the API server answered 403 Forbidden")
    assert "cluster-view-rbac.yaml" in err and "not-a-secret" not in err


def test_an_unreachable_api_server_is_one_line_and_exit_2(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _kubeconfig(tmp_path, f"http://127.0.0.1:{port}")
    assert cli.main(["cluster", "--kubeconfig", str(cfg), "preflight", "--root", str(ROOT)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("hilci: error: cannot reach the API server")
