"""`hilci cluster`: nodes, GPUs, Jetsons and rigs of the CI cluster, what holds them, and conflicts.

Read-only, on the kubernetes client: node labels (arch, board, GPU), taints, allocatable against what running
pods request of `nvidia.com/gpu` and `hilci.dev/rig`, the pods holding them, pods Pending for lack of a GPU or
rig (with the scheduler's message), and double allocation (two running pods on one rig).
"""

from __future__ import annotations

from dataclasses import dataclass, field

GPU = "nvidia.com/gpu"
RIG = "hilci.dev/rig"
BOARD_LABEL = "hilci.dev/board"
ARCH_LABEL = "kubernetes.io/arch"
GPU_LABELS = ("nvidia.com/gpu.present", "nvidia.com/gpu.product")
HOLDING_PHASES = ("Running", "Pending")  # a scheduled pod holds its resources until it ends


@dataclass
class NodeView:
    name: str
    arch: str
    board: str
    gpu_label: str
    taints: list[str]
    allocatable: dict[str, int]
    requested: dict[str, int] = field(default_factory=dict)
    pods: list[str] = field(default_factory=list)  # "namespace/name (gpu 1, rig 1)"


@dataclass
class ClusterView:
    nodes: list[NodeView]
    pending: list[str]  # "namespace/name: reason"
    conflicts: list[str]


def _count(value) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _requests(pod) -> dict[str, int]:
    """What a pod asks of the counted resources (limits stand in for requests, as for extended resources)."""
    total: dict[str, int] = {}
    for c in (pod.spec.containers or []):
        res = c.resources
        asked = dict((res.limits or {}) if res else {})
        asked.update((res.requests or {}) if res else {})
        for key in (GPU, RIG):
            if key in asked:
                total[key] = total.get(key, 0) + _count(asked[key])
    return total


def collect(core) -> ClusterView:
    """Read nodes and pods through a `kubernetes.client.CoreV1Api` and put them together."""
    nodes: dict[str, NodeView] = {}
    for node in core.list_node(_request_timeout=10).items:
        labels = node.metadata.labels or {}
        alloc = (node.status.allocatable or {}) if node.status else {}
        taints = [f"{t.key}={t.value or ''}:{t.effect}" for t in (node.spec.taints or [])] if node.spec else []
        nodes[node.metadata.name] = NodeView(
            name=node.metadata.name, arch=labels.get(ARCH_LABEL, "?"), board=labels.get(BOARD_LABEL, ""),
            gpu_label=next((f"{k}={labels[k]}" for k in GPU_LABELS if k in labels), ""), taints=taints,
            allocatable={k: _count(alloc.get(k)) for k in (GPU, RIG) if k in alloc})
    pending, rig_holders = [], {}
    for pod in core.list_pod_for_all_namespaces(_request_timeout=10).items:
        name = f"{pod.metadata.namespace or 'default'}/{pod.metadata.name}"
        phase = pod.status.phase if pod.status else ""
        asked = _requests(pod)
        node = nodes.get(pod.spec.node_name or "")
        if node is None:
            if phase == "Pending":
                pending.append(f"{name}: {_why_pending(pod, asked)}")
            continue
        if phase not in HOLDING_PHASES:
            continue
        for key, n in asked.items():
            node.requested[key] = node.requested.get(key, 0) + n
        held = ", ".join(f"{'gpu' if k == GPU else 'rig'} {asked[k]}" for k in (GPU, RIG) if k in asked)
        node.pods.append(f"{name} ({phase}{', ' + held if held else ''})")
        labels = pod.metadata.labels or {}
        if phase == "Running" and (RIG in asked or labels.get(BOARD_LABEL)) and node.board:
            rig_holders.setdefault(node.name, []).append(name)
    conflicts = []
    for node in nodes.values():
        for key, n in node.requested.items():
            if n > node.allocatable.get(key, 0):
                conflicts.append(f"{node.name}: {n} {key} requested by running pods, "
                                 f"{node.allocatable.get(key, 0)} allocatable")
    for node_name, holders in rig_holders.items():
        if len(holders) > 1:
            conflicts.append(f"rig {nodes[node_name].board} on {node_name} held by {len(holders)} running pods: "
                             f"{', '.join(sorted(holders))}")
    return ClusterView(nodes=sorted(nodes.values(), key=lambda n: n.name), pending=pending, conflicts=conflicts)


def _why_pending(pod, asked: dict[str, int]) -> str:
    """The scheduler's message (PodScheduled=False), tagged when it names a missing GPU or rig."""
    for cond in (pod.status.conditions or []) if pod.status else []:
        if cond.type == "PodScheduled" and cond.status == "False":
            message = cond.message or cond.reason or "unschedulable"
            lacks = [k for k in (GPU, RIG) if f"Insufficient {k}" in message]
            tag = f"waiting for {' and '.join(lacks)}: " if lacks else ""
            return f"{tag}{message}"
    wants = ", ".join(f"{k} {n}" for k, n in asked.items())
    return f"not scheduled yet{' (asks ' + wants + ')' if wants else ''}"


def format_view(view: ClusterView) -> str:
    lines = [f"{'NODE':18} {'ARCH':6} {'BOARD':10} {'GPU':>7} {'RIG':>7}  TAINTS"]
    for n in view.nodes:
        gpu = f"{n.requested.get(GPU, 0)}/{n.allocatable.get(GPU, 0)}" if GPU in n.allocatable else "-"
        rig = f"{n.requested.get(RIG, 0)}/{n.allocatable.get(RIG, 0)}" if RIG in n.allocatable else "-"
        lines.append(f"{n.name:18} {n.arch:6} {n.board or '-':10} {gpu:>7} {rig:>7}  {', '.join(n.taints) or '-'}")
        for pod in n.pods:
            lines.append(f"    {pod}")
    if view.pending:
        lines.append("PENDING")
        lines += [f"    {p}" for p in view.pending]
    if view.conflicts:
        lines.append("CONFLICTS")
        lines += [f"    {c}" for c in view.conflicts]
    return "\n".join(lines)


def register(subparsers) -> None:
    p = subparsers.add_parser("cluster", help="nodes, GPUs, Jetsons and rigs: capacity, holders, conflicts")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", default=None, help="kubeconfig context")
    p.set_defaults(func=_cmd_cluster)


def _cmd_cluster(args) -> int:
    """Exit 0 when the cluster is sound, 1 when a rig or GPU is double-allocated."""
    import sys

    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    from ci.stage import UsageError

    try:
        api_client = config.new_client_from_config(config_file=args.kubeconfig, context=args.context)
    except (ConfigException, OSError) as exc:
        raise UsageError(f"kubeconfig: {exc}") from None
    try:
        view = collect(client.CoreV1Api(api_client))
    except client.ApiException as exc:
        print(f"hilci: error: the API server answered {exc.status} {exc.reason}", file=sys.stderr)
        return 2
    except Exception as exc:  # urllib3 connection errors: one line, not a traceback
        print(f"hilci: error: cannot reach the API server ({type(exc).__name__})", file=sys.stderr)
        return 2
    print(format_view(view))
    return 1 if view.conflicts else 0
