"""`hilci cluster preflight`: can each pod template be scheduled on the live cluster, where, and if not, why.

Reads nodes (labels, taints, cordons, allocatable) and RuntimeClasses and, for every `podtemplates/*.yaml`, runs
the scheduler's own filters that a CI pod meets: NodeUnschedulable, NodeSelector (node affinity), TaintToleration
and NodeResourcesFit (requests against allocatable, running pods ignored: this asks "could it ever run"), plus
the admission check that the pod's RuntimeClass exists. A template that fits nowhere is explained in the
scheduler's words ("0/4 nodes are available: 2 node(s) had untolerated taint {hilci.dev/rig: orin-nx}, ...")
and node by node, with the hint an operator needs when the cause is a device plugin that is not running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hilci.kube.resources import GPU, RIG

CONTAINER = "hilci"  # the container of every pod template that runs `hilci stage` (ci/jenkins/jenkinsfile.py)

PLUGIN_HINTS = {
    GPU: "NVIDIA's device plugin advertises it; its chart schedules only onto nodes labelled "
         "nvidia.com/gpu.present=true (or by NFD/GFD) and must tolerate the node's taints (docs/cluster.md)",
    RIG: "the rig device plugin (deploy/rig-device-plugin.yaml) advertises it on nodes labelled "
         "hilci.dev/board, one per rig YAML in /etc/hilci/rigs whose devices all answer; its pod needs the jetson "
         "image imported on the node (else ErrImagePull: `kubectl -n kube-system get pods -o wide`; "
         "docs/cluster.md)",
}


@dataclass
class Node:
    name: str
    labels: dict[str, str]
    taints: list[dict]  # {key, value, effect}
    allocatable: dict[str, str]
    unschedulable: bool = False
    images: set[str] = field(default_factory=set)  # status.images[].names: what the node's containerd holds


@dataclass
class Template:
    name: str  # file stem, e.g. jetson-orin-nx
    node_selector: dict[str, str]
    tolerations: list[dict]
    runtime_class: str | None
    requests: dict[str, str]  # summed over containers (limits stand in where requests are absent)
    image: str = ""  # the `hilci` container's image: ours, built by `make images`, on no public registry
    pull_secrets: list[str] = field(default_factory=list)  # imagePullSecrets: the kubelet pulls from a registry
    # Secrets the `hilci` container reads: (secret, key or None for envFrom, optional)
    secret_refs: list[tuple[str, str | None, bool]] = field(default_factory=list)


@dataclass
class Verdict:
    template: str
    fits: list[str] = field(default_factory=list)  # node names
    reasons: dict[str, list[str]] = field(default_factory=dict)  # node -> why not, in the scheduler's words
    blocker: str = ""  # a reason that applies to every node (admission)
    hints: list[str] = field(default_factory=list)

    @property
    def schedulable(self) -> bool:
        return bool(self.fits) and not self.blocker


def template_from(path: Path, pod: dict) -> Template:
    spec = pod.get("spec") or {}
    requests: dict[str, str] = {}
    ours = next((c for c in spec.get("containers") or [] if c.get("name") == CONTAINER), {})
    refs: list[tuple[str, str | None, bool]] = []
    for source in ours.get("envFrom") or []:
        if source.get("secretRef"):
            refs.append((source["secretRef"]["name"], None, bool(source["secretRef"].get("optional"))))
    for env in ours.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            refs.append((ref["name"], ref["key"], bool(ref.get("optional"))))
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        asked = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        for key, value in asked.items():
            requests[key] = _add(requests.get(key), str(value))
    return Template(name=path.stem, node_selector={k: str(v) for k, v in (spec.get("nodeSelector") or {}).items()},
                    tolerations=list(spec.get("tolerations") or []), runtime_class=spec.get("runtimeClassName"),
                    requests=requests, image=str(ours.get("image") or ""),
                    pull_secrets=[s["name"] for s in spec.get("imagePullSecrets") or [] if s.get("name")],
                    secret_refs=refs)


def quantity(value: str | None):
    from kubernetes.utils.quantity import parse_quantity

    try:
        return parse_quantity(value) if value is not None else 0
    except ValueError:
        return 0


def _add(a: str | None, b: str) -> str:
    return str(quantity(a) + quantity(b)) if a is not None else b


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    """The scheduler's toleration match: key (or operator Exists without key), value for Equal, effect."""
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator", "Equal")
        if not t.get("key"):
            if op == "Exists":
                return True
            continue
        if t["key"] != taint.get("key"):
            continue
        if op == "Exists" or str(t.get("value", "")) == str(taint.get("value") or ""):
            return True
    return False


def node_reasons(tpl: Template, node: Node) -> tuple[list[str], list[str]]:
    """Why `tpl` cannot run on `node` (scheduler's words with the detail), and hints for the operator."""
    reasons, hints = [], []
    if node.unschedulable:
        reasons.append("node(s) were unschedulable (cordoned)")
    missing = [f"{k}={v}" for k, v in tpl.node_selector.items() if node.labels.get(k) != v]
    if missing:
        reasons.append(f"node(s) didn't match Pod's node affinity/selector (missing label {', '.join(missing)})")
    for taint in node.taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tpl.tolerations, taint):
            reasons.append(f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value') or ''}}}")
    if not missing:  # resources matter only on nodes the pod is meant for; elsewhere they only add noise
        for key, want in sorted(tpl.requests.items()):
            if quantity(want) > quantity(node.allocatable.get(key, "0")):
                reasons.append(f"Insufficient {key} (asks {want}, allocatable {node.allocatable.get(key, '0')})")
                if key in PLUGIN_HINTS:
                    hints.append(f"{node.name} has no allocatable {key}: {PLUGIN_HINTS[key]}")
    return reasons, hints


def check(templates: list[Template], nodes: list[Node], runtime_classes: set[str]) -> list[Verdict]:
    verdicts = []
    for tpl in templates:
        v = Verdict(tpl.name)
        if tpl.runtime_class and tpl.runtime_class not in runtime_classes:
            v.blocker = (f'pod rejected: RuntimeClass "{tpl.runtime_class}" not found '
                         f"(cluster has: {', '.join(sorted(runtime_classes)) or 'none'}; "
                         "K3s creates it at start; other distributions: deploy/runtimeclass-nvidia.yaml)")
        for node in nodes:
            reasons, hints = node_reasons(tpl, node)
            if reasons:
                v.reasons[node.name] = reasons
                v.hints += [h for h in hints if h not in v.hints]
            else:
                v.fits.append(node.name)
        verdicts.append(v)
    return verdicts


def summary(v: Verdict, total: int) -> str:
    """The scheduler's FailedScheduling sentence: "0/N nodes are available: k reason, ...\""""
    counts: dict[str, int] = {}
    for reasons in v.reasons.values():
        for r in reasons:
            short = r.split(" (", 1)[0]
            counts[short] = counts.get(short, 0) + 1
    parts = [f"{n} {r}" for r, n in sorted(counts.items())]
    return f"0/{total} nodes are available: {', '.join(parts)}."


def format_verdicts(verdicts: list[Verdict], total: int) -> str:
    lines = []
    for v in verdicts:
        if v.schedulable:
            lines.append(f"{v.template}: schedulable on {', '.join(v.fits)}")
            continue
        if v.blocker:
            lines.append(f"{v.template}: NOT schedulable: {v.blocker}")
            if not v.fits:
                lines.append(f"    and {summary(v, total)}")
        else:
            lines.append(f"{v.template}: NOT schedulable: {summary(v, total)}")
        for node, reasons in v.reasons.items():
            lines.append(f"    {node}: {'; '.join(reasons)}")
        lines += [f"    hint: {h}" for h in v.hints]
    return "\n".join(lines)


def read_cluster(api_client) -> tuple[list[Node], set[str]]:
    """Nodes and RuntimeClass names through the kubernetes client (every call with a timeout)."""
    from kubernetes import client

    nodes = []
    for n in client.CoreV1Api(api_client).list_node(_request_timeout=10).items:
        spec, status = n.spec, n.status
        nodes.append(Node(
            name=n.metadata.name, labels=dict(n.metadata.labels or {}),
            taints=[{"key": t.key, "value": t.value, "effect": t.effect} for t in ((spec.taints if spec else None)
                                                                               or [])],
            allocatable={k: str(v) for k, v in ((status.allocatable if status else None) or {}).items()},
            unschedulable=bool(spec.unschedulable) if spec else False,
            images={name for image in ((status.images if status else None) or []) for name in (image.names or [])}))
    classes = {rc.metadata.name for rc in client.NodeV1Api(api_client).list_runtime_class(_request_timeout=10).items}
    return sorted(nodes, key=lambda n: n.name), classes


def read_templates(root: Path) -> list[Template]:
    from hilci.errors import UsageError
    from hilci.kube.podtemplates import TemplateError, check_pod_template

    templates = []
    for path in sorted((root / "podtemplates").glob("*.yaml")):
        try:
            templates.append(template_from(path, check_pod_template(path)))
        except TemplateError as exc:
            raise UsageError(str(exc)) from None
    if not templates:
        raise UsageError(f"{root / 'podtemplates'}: no pod template found")
    return templates
