"""Pod templates and deploy manifests: strict schema and our security rules, each rule shown failing."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from hilci.example import PIPELINE
from hilci.kube.podtemplates import (
    Document,
    TemplateError,
    check_file,
    check_pod_template,
    check_security,
    check_tree,
)

ROOT = Path(__file__).resolve().parents[1]


def test_every_template_and_manifest_passes():
    checked = {p.relative_to(ROOT).as_posix() for p in check_tree(ROOT)}
    for stage in PIPELINE.stages:
        for template in PIPELINE.pod_templates(stage):
            assert template in checked
    assert {"deploy/jenkins-rbac.yaml", "deploy/namespace.yaml", "deploy/runtimeclass-nvidia.yaml",
            "deploy/rig-device-plugin.yaml"} <= checked


def _pod(name: str) -> dict:
    return yaml.safe_load((ROOT / "podtemplates" / name).read_text())


@pytest.mark.parametrize("board", [b.name for b in PIPELINE.boards])
def test_jetson_templates_pin_the_board(board):
    pod = _pod(f"jetson-{board}.yaml")
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/arch": "arm64", "hilci.dev/board": board}
    assert {"key": "hilci.dev/rig", "operator": "Equal", "value": board, "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["runtimeClassName"] == "nvidia"
    hilci = next(c for c in spec["containers"] if c["name"] == "hilci")
    assert hilci["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert hilci["resources"]["limits"]["hilci.dev/rig"] == "1"
    node = next(e for e in hilci["env"] if e["name"] == "NODE_NAME")
    assert node["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert all(not (c.get("securityContext") or {}).get("privileged") for c in spec["containers"])
    # the rig device plugin hands over device nodes and the rig YAML: no hostPath, so Pod Security can enforce
    assert not [v for v in spec.get("volumes") or [] if "hostPath" in v]


def test_gpu_template_asks_for_one_gpu_on_a_gpu_node():
    spec = _pod("gpu.yaml")["spec"]
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    hilci = next(c for c in spec["containers"] if c["name"] == "hilci")
    assert hilci["resources"]["requests"]["nvidia.com/gpu"] == "1"


def _broken(tmp_path: Path, mutate) -> Path:
    pod = copy.deepcopy(_pod("jetson-orin-nx.yaml"))
    mutate(pod)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(pod))
    return path


def _hilci(pod: dict) -> dict:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "hilci")


@pytest.mark.parametrize("mutate, message", [
    (lambda p: _hilci(p)["securityContext"].update(privileged=True), "securityContext.privileged: true"),
    (lambda p: p["spec"].update(hostNetwork=True), "spec.hostNetwork: true is not allowed"),
    (lambda p: p["spec"].setdefault("volumes", []).append({"name": "root", "hostPath": {"path": "/"}}),
     "volumes[root].hostPath.path '/' is not a rig device path"),
    (lambda p: p["spec"].setdefault("volumes", []).append({"name": "dev", "hostPath": {"path": "/dev"}}),
     "volumes[dev].hostPath.path '/dev' is not a rig device path"),
    (lambda p: _hilci(p)["resources"].pop("limits"), "spec.containers[hilci].resources.limits lacks cpu, memory"),
    (lambda p: _hilci(p)["resources"]["requests"].pop("memory"), "resources.requests lacks memory"),
    (lambda p: p["spec"]["securityContext"].update(runAsUser=0), "must run as a non-root user"),
    (lambda p: p["spec"]["securityContext"].pop("runAsNonRoot"), "must run as a non-root user"),
    (lambda p: _hilci(p)["securityContext"].update(allowPrivilegeEscalation=True), "allowPrivilegeEscalation"),
    (lambda p: _hilci(p)["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]), "capabilities.add"),
])
def test_each_security_rule_fails_on_a_bad_template(tmp_path, mutate, message):
    with pytest.raises(TemplateError) as err:
        check_pod_template(_broken(tmp_path, mutate))
    assert message in str(err.value)
    assert str(err.value).startswith(str(tmp_path / "bad.yaml"))


def test_strict_schema_catches_a_misspelt_field(tmp_path):
    path = _broken(tmp_path, lambda p: _hilci(p).update(imagePullPolicyy="Always"))
    with pytest.raises(TemplateError, match=r"spec\.containers\.1: Additional properties are not allowed "
                                            r"\('imagePullPolicyy' was unexpected\)"):
        check_pod_template(path)


def test_a_template_without_the_hilci_container_or_with_bad_yaml(tmp_path):
    path = _broken(tmp_path, lambda p: _hilci(p).update(name="main"))
    with pytest.raises(TemplateError, match="no 'hilci' container"):
        check_pod_template(path)
    bad = tmp_path / "bad2.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nspec:\n  containers: [\n")
    with pytest.raises(TemplateError, match=r"bad2.yaml: line \d+: malformed YAML"):
        check_file(bad)


def test_security_rules_reach_workload_templates():
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                  "spec": {"template": {"spec": {"hostPID": True, "containers": []}}}}
    with pytest.raises(TemplateError, match="spec.hostPID"):
        check_security(Document(Path("deploy/x.yaml"), 0, deployment))


def _daemonset() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "rig-device-plugin.yaml").read_text())


@pytest.mark.parametrize("annotation, message", [
    ("hilci.dev/why-privileged", "securityContext.privileged: true is not allowed"),
    ("hilci.dev/why-root", "must run as a non-root user"),
    ("hilci.dev/why-hostpath", "hostPath.path '/var/lib/kubelet/device-plugins' is not a rig device path"),
])
def test_the_device_plugin_s_privileges_each_need_their_reason(tmp_path, annotation, message):
    ds = _daemonset()
    check_security(Document(Path("deploy/rig-device-plugin.yaml"), 0, ds))  # with every reason: accepted
    ds["metadata"]["annotations"].pop(annotation)
    with pytest.raises(TemplateError, match=re.escape(message)):
        check_security(Document(Path("deploy/rig-device-plugin.yaml"), 0, ds))
    ds["metadata"]["annotations"][annotation] = "because"  # a placeholder is not a reason
    with pytest.raises(TemplateError, match=re.escape(message)):
        check_security(Document(Path("deploy/rig-device-plugin.yaml"), 0, ds))


def test_the_device_plugin_daemonset_runs_on_rig_nodes_and_never_talks_to_the_api_server():
    spec = _daemonset()["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert {"key": "hilci.dev/board", "operator": "Exists"} in term["matchExpressions"]
    assert {"key": "hilci.dev/rig", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    plugin = spec["containers"][0]
    assert plugin["command"][:2] == ["hilci", "deviceplugin"]
    assert plugin["securityContext"]["readOnlyRootFilesystem"] is True


def test_a_pod_template_gets_no_exception(tmp_path):
    path = _broken(tmp_path, lambda p: p["metadata"].setdefault("annotations", {}).update(
        {"hilci.dev/why-privileged": "a long enough reason that would excuse a node agent"}))
    with pytest.raises(TemplateError, match="a pod template runs CI code and gets no exception"):
        check_pod_template(path)


def test_the_agents_role_grants_no_secrets_and_no_exec_mutation():
    role = next(d for d in yaml.safe_load_all((ROOT / "deploy" / "jenkins-rbac.yaml").read_text())
                if d["kind"] == "Role")
    by_resource = {r: set(rule["verbs"]) for rule in role["rules"] for r in rule["resources"]}
    assert "secrets" not in by_resource
    assert by_resource["pods/exec"] == {"create", "get"}
    text = (ROOT / "docs" / "jenkins.md").read_text()
    assert "pods/exec" in text and "secrets" in text  # what stays and why is documented


@pytest.mark.parametrize("template", sorted(p.name for p in (ROOT / "podtemplates").glob("*.yaml")))
def test_every_pod_template_meets_pod_security_restricted(template):
    """deploy/namespace.yaml enforces `restricted`: what its checks ask of every pod and container."""
    spec = _pod(template)["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert all(set(v) & {"emptyDir", "configMap", "secret", "projected", "persistentVolumeClaim",
                         "downwardAPI", "ephemeral", "csi", "name"} == set(v) for v in spec.get("volumes") or [])
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], c["name"]
    ns = next(d for d in yaml.safe_load_all((ROOT / "deploy" / "namespace.yaml").read_text()) if d["kind"] == "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
