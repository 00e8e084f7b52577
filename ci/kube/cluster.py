"""`hilci cluster`: nodes, GPUs, Jetsons and rigs of the CI cluster, what holds them, and conflicts.

Read-only, on the kubernetes client: node labels (arch, board, GPU), taints, allocatable against what running
pods request of `nvidia.com/gpu` and `hilci.dev/rig`, the pods holding them, pods Pending for lack of a GPU or
rig (with the scheduler's message), and double allocation (two running pods on one rig).

Allocation records: each rig's health (the rig device plugin reports an unhealthy rig, and the kubelet then
counts it out of allocatable: capacity 1, allocatable 0), the pod and Jenkins build holding it and since when,
and each rig's and GPU's busy share over a period, from the pods still there and the Scheduled/Killing events of
those already deleted (Jenkins deletes agent pods when their stage ends). On a rig or GPU node every pod of ours
holds the resource: the node's taint admits only the pods that ask for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from hilci.kube.resources import ARCH_LABEL, BOARD_LABEL, GPU, GPU_LABELS, RIG
from hilci.kube.usage import Hold, busy_share, overlaps

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


# --- allocation records -------------------------------------------------------------------------------
BUILD_ANNOTATIONS = ("runUrl", "buildUrl")  # set on agent pods by Jenkins's Kubernetes plugin
ASSIGNED = re.compile(r"assigned (?P<pod>\S+) to (?P<node>\S+)")


@dataclass
class Holder:
    pod: str
    build: str
    since: datetime | None


@dataclass
class Record:
    """One rig or GPU node: health, who holds it now, how busy it was over the period, double allocations."""

    kind: str  # "rig" or "gpu"
    name: str  # the board for a rig, the node for a GPU
    node: str
    health: str
    holders: list[Holder]
    busy: float
    doubles: list[tuple[str, str]]


def _time(*candidates) -> datetime | None:
    for value in candidates:
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return None


def _pod_end(pod) -> datetime | None:
    """When a finished pod let go: its last container's finishedAt (None while it still holds)."""
    if pod.status is None or pod.status.phase in HOLDING_PHASES:
        return None
    ends = [_time(cs.state.terminated.finished_at) for cs in (pod.status.container_statuses or [])
            if cs.state and cs.state.terminated]
    ends = [e for e in ends if e]
    return max(ends) if ends else _time(pod.metadata.deletion_timestamp, pod.status.start_time) or datetime.now(
        timezone.utc)


def records(core, namespace: str, period: timedelta, now: datetime | None = None) -> list[Record]:
    """Allocation records of every rig and GPU node; holds from live pods, and from events for deleted ones."""
    now = now or datetime.now(timezone.utc)
    start = now - period
    nodes = {n.metadata.name: n for n in core.list_node(_request_timeout=10).items}
    holds: dict[tuple[str, str], list[Hold]] = {}  # (node, resource) -> holds
    current: dict[tuple[str, str], list[Holder]] = {}
    live: set[str] = set()
    for pod in core.list_pod_for_all_namespaces(_request_timeout=10).items:
        node = pod.spec.node_name if pod.spec else None
        if node not in nodes:
            continue
        name = f"{pod.metadata.namespace or 'default'}/{pod.metadata.name}"
        live.add(name)
        since = _time(pod.status.start_time if pod.status else None, pod.metadata.creation_timestamp)
        end = _pod_end(pod)
        annotations = pod.metadata.annotations or {}
        build = next((annotations[a] for a in BUILD_ANNOTATIONS if annotations.get(a)), "")
        for key in _requests(pod):
            if since:
                holds.setdefault((node, key), []).append(Hold(name, since.timestamp(), end and end.timestamp()))
            if end is None:
                current.setdefault((node, key), []).append(Holder(name, build, since))
    for (node, key), hs in _event_holds(core, namespace, nodes, live).items():
        holds.setdefault((node, key), []).extend(hs)
    out = []
    for node_name, node in sorted(nodes.items()):
        labels = node.metadata.labels or {}
        cap = (node.status.capacity or {}) if node.status else {}
        alloc = (node.status.allocatable or {}) if node.status else {}
        for key, kind in ((RIG, "rig"), (GPU, "gpu")):
            total = _count(cap.get(key, alloc.get(key)))
            if not total:
                continue
            ready = _count(alloc.get(key))
            health = "Healthy" if ready >= total else f"Unhealthy ({ready} of {total} allocatable)"
            hs = holds.get((node_name, key), [])
            doubles = overlaps(hs, start.timestamp(), now.timestamp()) if total == 1 else []
            out.append(Record(kind, labels.get(BOARD_LABEL, node_name) if kind == "rig" else node_name, node_name,
                              health, current.get((node_name, key), []),
                              busy_share(hs, start.timestamp(), now.timestamp()), doubles))
    return out


def _event_holds(core, namespace: str, nodes: dict, live: set[str]) -> dict[tuple[str, str], list[Hold]]:
    """Holds of pods already deleted, from their Scheduled and Killing events in the CI namespace."""
    started: dict[str, tuple[str, float]] = {}
    ended: dict[str, float] = {}
    for ev in core.list_namespaced_event(namespace, _request_timeout=10).items:
        obj = ev.involved_object
        if obj is None or obj.kind != "Pod":
            continue
        name = f"{obj.namespace or namespace}/{obj.name}"
        when = _time(ev.event_time, ev.first_timestamp, ev.last_timestamp, ev.metadata.creation_timestamp)
        if name in live or when is None:
            continue
        if ev.reason == "Scheduled":
            m = ASSIGNED.search(ev.message or "")
            if m and m.group("node") in nodes:
                started[name] = (m.group("node"), when.timestamp())
        elif ev.reason == "Killing":
            ended[name] = max(ended.get(name, 0.0), when.timestamp())
    out: dict[tuple[str, str], list[Hold]] = {}
    for name, (node, begin) in started.items():
        alloc = (nodes[node].status.allocatable or {}) if nodes[node].status else {}
        for key in (RIG, GPU):
            if key in alloc:  # the node's taint admits only pods that ask for its rig or GPU
                out.setdefault((node, key), []).append(Hold(name, begin, ended.get(name, begin)))
    return out


def format_records(recs: list[Record], period: timedelta) -> str:
    hours = period.total_seconds() / 3600
    lines = [f"{'RESOURCE':22} {'NODE':14} {'HEALTH':28} BUSY ({hours:g} h)  HELD BY"]
    for r in recs:
        held = "; ".join(f"{h.pod}{' (build ' + h.build + ')' if h.build else ''}"
                         f"{' since ' + h.since.strftime('%Y-%m-%d %H:%M:%SZ') if h.since else ''}"
                         for h in r.holders) or "-"
        lines.append(f"{r.kind + ' ' + r.name:22} {r.node:14} {r.health:28} {r.busy:>8.0%}       {held}")
        for a, b in r.doubles:
            lines.append(f"    DOUBLE ALLOCATION: {r.kind} {r.name} held by {a} and {b} at once")
    return "\n".join(lines)


def parse_period(text: str) -> timedelta:
    """'90m', '24h', '7d', '3600s' or a number of hours."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"--period {text!r}: expected a positive duration like 90m, 24h or 7d")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 3600}[m.group(2)]
    return timedelta(seconds=float(m.group(1)) * unit)
