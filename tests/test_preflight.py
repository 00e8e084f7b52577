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
from hilci.kube import setupcheck
from hilci.kube.preflight import Node, Template, Verdict, tolerates
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
    """The nodes docs/cluster.md creates: name, arch, the labels and taints of its K3s command, whether the NVIDIA
    container toolkit is installed before the K3s agent starts (K3s configures the `nvidia` handler only then),
    and the images imported into its containerd (`docker save IMAGE -o F`, `ssh NODE sudo k3s ctr images import
    F`)."""
    text = re.sub(r"\\\n\s*", " ", DOCS.read_text())
    saved = dict((f, image) for image, f in re.findall(r"docker save (\S+) -o (\S+)", text))
    imported: dict[str, set[str]] = {}
    for node, f in re.findall(r"ssh (\S+) sudo k3s ctr images import (\S+)", text):
        imported.setdefault(node, set()).add(saved[f])
    nodes = []
    for m in re.finditer(r"# node: (\S+) \((amd64|arm64)\)\n(.*?)```", text, re.S):
        lines = m.group(3).splitlines()
        k3s = next(i for i, line in enumerate(lines) if "get.k3s.io" in line)
        toolkit = any(re.search(r"apt-get install -y .*nvidia-container", line) for line in lines[:k3s])
        words = shlex.split(lines[k3s])
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
        nodes.append({"name": m.group(1), "arch": m.group(2), "labels": labels, "taints": taints,
                      "nvidia_runtime": toolkit, "images": sorted(imported.get(m.group(1), ()))})
    return nodes


def docs_store_secret() -> tuple[str, dict[str, str]]:
    """The namespace and keys of docs/store.md's `kubectl -n NS create secret generic hilci-store ...`."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "docs" / "store.md").read_text())
    words = shlex.split(re.search(r"kubectl -n \S+ create secret generic hilci-store.*", text).group(0))
    keys = dict(w.split("=", 2)[1:] for w in words if w.startswith("--from-literal="))
    return words[2], keys


def nvidia_values() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "helm" / "nvidia-device-plugin.values.yaml").read_text())


def rig_daemonset() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "rig-device-plugin.yaml").read_text())["spec"]["template"]["spec"]


def runs_on(node: dict, tolerations: list[dict], wants) -> bool:
    untolerated = [t for t in node["taints"] if t["effect"] in ("NoSchedule", "NoExecute")
                   and not tolerates(tolerations, t)]
    return not untolerated and wants(node["labels"])


def build(core, nodes: list[dict], *, nvidia: dict, rig_ds: dict, runtime_classes=("nvidia",),
          secret: tuple[str, dict] | None = None, token: bool = True) -> None:
    """Create the nodes with what the device plugins that would run on them advertise and the images imported
    into them, the RuntimeClasses, and what deploy/ and docs/store.md create in the namespace."""
    import base64

    from kubernetes import client

    for path in ("namespace.yaml", "jenkins-rbac.yaml", "jenkins-agents-token.yaml"):
        for doc in yaml.safe_load_all((ROOT / "deploy" / path).read_text()):
            if doc["kind"] == "ServiceAccount":  # (kmock cannot serve Namespace objects themselves)
                core.create_namespaced_service_account(doc["metadata"]["namespace"], doc)
            elif doc["kind"] == "Secret" and token:  # as the token controller fills it in
                core.create_namespaced_secret(doc["metadata"]["namespace"], {
                    **doc, "data": {"token": base64.b64encode(b"not-a-real-token").decode()}})
    namespace, keys = secret or docs_store_secret()
    if namespace:
        core.create_namespaced_secret(namespace, {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hilci-store", "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in keys.items()}})

    rig_keys = [e["key"] for t in rig_ds["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"] for e in t["matchExpressions"] if e["operator"] == "Exists"]
    for n in nodes:
        alloc = dict(CAPACITY[n["arch"]])
        if runs_on(n, nvidia.get("tolerations", []),
                   lambda labels: any(labels.get(k) == v for k, v in NVIDIA_CHART_NODE_LABELS.items())):
            # the chart's pod runs with runtimeClassName nvidia: without the node's handler it never starts
            assert nvidia.get("runtimeClassName") == "nvidia"
            if n.get("nvidia_runtime", True):
                alloc[GPU] = "1"
        if runs_on(n, rig_ds.get("tolerations", []), lambda labels: all(k in labels for k in rig_keys)):
            alloc[RIG] = "1"  # one rig YAML in the node's /etc/hilci/rigs
        core.create_node({"apiVersion": "v1", "kind": "Node",
                          "metadata": {"name": n["name"], "labels": n["labels"]},
                          "spec": {"taints": n["taints"], "unschedulable": n.get("unschedulable", False)},
                          "status": {"capacity": alloc, "allocatable": alloc,
                                     "images": [{"names": [image], "sizeBytes": 1 << 30}
                                                for image in n.get("images", [])]}})
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


def test_the_docs_install_the_nvidia_toolkit_before_k3s_and_import_each_node_s_images():
    nodes = {n["name"]: n for n in docs_nodes()}
    for name in ("gpu-ws-1", "jetson-orin-nx-1", "jetson-agx-orin-1"):
        assert nodes[name]["nvidia_runtime"], f"docs/cluster.md: {name} joins K3s before the NVIDIA toolkit"
    templates = {p.stem: yaml.safe_load(p.read_text()) for p in (ROOT / "podtemplates").glob("*.yaml")}
    image = {k: next(c["image"] for c in t["spec"]["containers"] if c["name"] == "hilci") for k, t in templates.items()}
    assert nodes["k3s-server"]["images"] == [image["cpu"]]
    assert nodes["gpu-ws-1"]["images"] == [image["gpu"]]
    assert nodes["jetson-orin-nx-1"]["images"] == [image["jetson-orin-nx"]]
    ds_image = yaml.safe_load((ROOT / "deploy" / "rig-device-plugin.yaml").read_text())["spec"]["template"][
        "spec"]["containers"][0]["image"]
    assert ds_image in nodes["jetson-agx-orin-1"]["images"], "the rig device plugin's image is not imported"
    namespace, keys = docs_store_secret()
    assert namespace == "hilci-ci" and sorted(keys) == sorted(setupcheck.STORE_KEYS)


def test_the_set_up_steps_of_the_docs_all_pass(kube, tmp_path, capsys):  # noqa: F811
    build(kube.core(), docs_nodes(), nvidia=nvidia_values(), rig_ds=rig_daemonset())
    rc, out = preflight(kube, tmp_path, capsys)
    assert rc == 0, out
    assert "jenkins rbac: ok: ServiceAccount jenkins-agents is in hilci-ci" in out
    assert "jenkins token: ok: Secret jenkins-agents-token in hilci-ci holds the token of jenkins-agents" in out
    assert "not-a-real-token" not in out
    assert ("store secret: ok: Secret hilci-store in hilci-ci holds AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, "
            "AWS_SECRET_ACCESS_KEY, HILCI_STORE") in out
    assert "images: ok: jetson-orin-nx: jetson-orin-nx-1 holds ghcr.io/hilci/hilci-ci-jetson:r36.4" in out
    for node in ("gpu-ws-1", "jetson-orin-nx-1", "jetson-agx-orin-1"):
        assert f"nvidia runtime: ok: {node}: runtime nvidia works" in out
    assert "nvidia runtime: ok: k3s-server" not in out  # no GPU template selects it
    assert "NOT ok" not in out and "…" not in out  # and no Secret value is printed


def test_the_store_secret_in_the_service_account_s_namespace_is_named(kube, tmp_path, capsys):  # noqa: F811
    _, keys = docs_store_secret()
    build(kube.core(), docs_nodes(), nvidia=nvidia_values(), rig_ds=rig_daemonset(), secret=("default", keys))
    rc, out = preflight(kube, tmp_path, capsys)
    assert rc == 1
    assert ("store secret: NOT ok: Secret hilci-store is not in namespace hilci-ci (read by cpu, gpu, "
            "jetson-agx-orin, jetson-orin-nx; optional there, so their pods would start without a store and cache "
            "nothing)") in out
    assert "cpu: schedulable on k3s-server" in out  # scheduling is not the problem


def test_a_store_secret_without_a_key_is_named_and_its_values_never_printed(kube, tmp_path, capsys):  # noqa: F811
    namespace, keys = docs_store_secret()
    keys = {k: v for k, v in keys.items() if k != "AWS_SECRET_ACCESS_KEY"}
    keys["AWS_ACCESS_KEY_ID"] = "printed-nowhere"
    build(kube.core(), docs_nodes(), nvidia=nvidia_values(), rig_ds=rig_daemonset(), secret=(namespace, keys))
    rc, out = preflight(kube, tmp_path, capsys)
    assert rc == 1
    assert "store secret: NOT ok: Secret hilci-store in hilci-ci lacks AWS_SECRET_ACCESS_KEY" in out
    assert "printed-nowhere" not in out


def test_a_node_without_its_template_s_image_is_named_with_the_image(kube, tmp_path, capsys):  # noqa: F811
    nodes = docs_nodes()
    next(n for n in nodes if n["name"] == "jetson-agx-orin-1")["images"] = []
    build(kube.core(), nodes, nvidia=nvidia_values(), rig_ds=rig_daemonset())
    rc, out = preflight(kube, tmp_path, capsys)
    assert rc == 1
    assert ("images: NOT ok: jetson-agx-orin: node jetson-agx-orin-1 does not hold image "
            "ghcr.io/hilci/hilci-ci-jetson:r36.4 and the template has no imagePullSecrets") in out
    assert "k3s ctr images import" in out
    assert "images: ok: jetson-orin-nx: jetson-orin-nx-1 holds" in out


def test_a_jetson_that_joined_before_the_nvidia_toolkit_is_named(kube, tmp_path, capsys):  # noqa: F811
    """K3s made RuntimeClass nvidia anyway: only the node's GPU, advertised through the runtime, proves it."""
    nodes = docs_nodes()
    next(n for n in nodes if n["name"] == "jetson-orin-nx-1")["nvidia_runtime"] = False
    build(kube.core(), nodes, nvidia=nvidia_values(), rig_ds=rig_daemonset())
    rc, out = preflight(kube, tmp_path, capsys)
    assert rc == 1
    assert ("nvidia runtime: NOT ok: jetson-orin-nx-1: runtime nvidia not proven: no allocatable nvidia.com/gpu. "
            "K3s creates RuntimeClass nvidia on every cluster, but the node's handler exists only if the NVIDIA "
            "container toolkit was installed before the K3s agent started") in out
    assert "nvidia runtime: ok: jetson-agx-orin-1" in out


def test_image_names_compare_as_containerd_writes_them():
    assert setupcheck.normalize_image("jenkins/inbound-agent:1") == "docker.io/jenkins/inbound-agent:1"
    assert setupcheck.normalize_image("busybox") == "docker.io/library/busybox:latest"
    assert setupcheck.normalize_image("localhost:5000/x") == "localhost:5000/x:latest"
    assert setupcheck.normalize_image("ghcr.io/a/b:t") == "ghcr.io/a/b:t"
    assert setupcheck.normalize_image("ghcr.io/a/b@sha256:00") == "ghcr.io/a/b@sha256:00"


def test_a_template_pulling_from_a_registry_needs_its_pull_secret():
    tpl = Template("cpu", {}, [], None, {}, image="registry.example/hilci:1", pull_secrets=["hilci-registry"])
    facts = setupcheck.ClusterFacts("hilci-ci", True, {"hilci-registry": None})
    verdict = Verdict("cpu", fits=["n1"])
    node = Node("n1", {}, [], {})
    [finding] = setupcheck.image_findings([tpl], [verdict], [node], facts)
    assert not finding.ok and "imagePullSecrets hilci-registry not in namespace hilci-ci" in finding.text
    facts.secrets["hilci-registry"] = {".dockerconfigjson"}
    [finding] = setupcheck.image_findings([tpl], [verdict], [node], facts)
    assert finding.ok


def test_no_token_secret_for_jenkins_is_named(kube, tmp_path, capsys):  # noqa: F811
    build(kube.core(), docs_nodes(), nvidia=nvidia_values(), rig_ds=rig_daemonset(), token=False)
    rc, out = preflight(kube, tmp_path, capsys)
    assert rc == 1
    assert ("jenkins token: NOT ok: Secret jenkins-agents-token is not in hilci-ci: kubectl apply -f "
            "deploy/jenkins-agents-token.yaml") in out
