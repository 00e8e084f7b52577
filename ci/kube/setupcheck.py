"""The set-up steps of docs/cluster.md that the API server can prove, for `hilci cluster preflight`.

Scheduling (preflight.py) says where a pod could be placed; these say whether it would then start and work:
- the agents' ServiceAccount exists in the pods' namespace (deploy/namespace.yaml, deploy/jenkins-rbac.yaml), and
  its token Secret (deploy/jenkins-agents-token.yaml) holds the token the controller filled in;
- the store Secret each template reads is in the pods' namespace and holds the keys: an `optional` envFrom lets
  a pod start without it, storeless, caching nothing, and nothing else would say so;
- each node a template can be placed on holds the template's image: K3s has its own containerd, so an image
  built elsewhere must be imported on each node (`k3s ctr images import`), unless the template pulls it from a
  registry with imagePullSecrets (which must then exist in the namespace);
- each node a GPU or Jetson template targets runs the NVIDIA runtime. K3s creates RuntimeClass `nvidia` on every
  cluster, but the node's handler exists only when the NVIDIA container toolkit was installed before the K3s
  agent started. The proof read here: NVIDIA's device plugin, which deploy/helm's values run with
  `runtimeClassName: nvidia`, advertises allocatable `nvidia.com/gpu` on the node; it cannot start there without
  the handler.
Secret values are read only to list their keys; no value is kept or printed.
"""

from __future__ import annotations

from dataclasses import dataclass

from hilci.kube.preflight import Node, Template, Verdict, quantity
from hilci.kube.resources import GPU

STORE_KEYS = ("HILCI_STORE", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
SERVICE_ACCOUNT = "jenkins-agents"
TOKEN_SECRET = "jenkins-agents-token"  # deploy/jenkins-agents-token.yaml: what Jenkins's cloud logs in with
FORBIDDEN = "forbidden"  # what a read the RBAC refused gives instead of keys


@dataclass
class Finding:
    step: str  # the set-up step, as docs/cluster.md names it
    ok: bool
    text: str


@dataclass
class ClusterFacts:
    """What the checks read besides nodes: None = absent; FORBIDDEN = the RBAC refused the read."""

    namespace: str
    service_account: bool | str
    secrets: dict[str, set[str] | None | str]  # name -> its keys


def normalize_image(ref: str) -> str:
    """An image reference as containerd names it: docker.io/library/ added, ':latest' when no tag or digest."""
    name, at, digest = ref.partition("@")
    first, slash, _ = name.partition("/")
    if not slash:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    if at:
        return f"{name}@{digest}"
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def secret_names(templates: list[Template]) -> set[str]:
    return ({name for t in templates for name, _, _ in t.secret_refs} | {s for t in templates for s in t.pull_secrets}
            | {TOKEN_SECRET})


def account_findings(facts: ClusterFacts) -> list[Finding]:
    """The namespace and the agents' ServiceAccount: one proves the other (a ServiceAccount lives in it)."""
    ns = facts.namespace
    if facts.service_account is True:
        return [Finding("jenkins rbac", True, f"ServiceAccount {SERVICE_ACCOUNT} is in {ns}")]
    if facts.service_account == FORBIDDEN:
        return [Finding("jenkins rbac", False, f"cannot read ServiceAccount {SERVICE_ACCOUNT} in {ns} "
                                               "(RBAC: deploy/cluster-view-rbac.yaml)")]
    return [Finding("jenkins rbac", False, f"ServiceAccount {SERVICE_ACCOUNT} is not in namespace {ns}: "
                                           "kubectl apply -f deploy/namespace.yaml -f deploy/jenkins-rbac.yaml")]


def token_findings(facts: ClusterFacts) -> list[Finding]:
    """The agents' token Secret, filled by the token controller (no token Secret is made by itself since 1.24)."""
    ns, keys = facts.namespace, facts.secrets.get(TOKEN_SECRET)
    if keys is None:
        return [Finding("jenkins token", False, f"Secret {TOKEN_SECRET} is not in {ns}: kubectl apply -f "
                                                "deploy/jenkins-agents-token.yaml (docs/jenkins.md)")]
    if keys == FORBIDDEN:
        return [Finding("jenkins token", False, f"cannot read Secret {TOKEN_SECRET} in {ns} "
                                                "(RBAC: deploy/cluster-view-rbac.yaml)")]
    if "token" not in keys:
        return [Finding("jenkins token", False, f"Secret {TOKEN_SECRET} in {ns} has no token yet: its annotation "
                                                f"must name ServiceAccount {SERVICE_ACCOUNT}, which must exist")]
    return [Finding("jenkins token", True, f"Secret {TOKEN_SECRET} in {ns} holds the token of {SERVICE_ACCOUNT}")]


def secret_findings(templates: list[Template], facts: ClusterFacts) -> list[Finding]:
    """Each Secret the `hilci` containers read: present in the pods' namespace, with every key they need."""
    ns = facts.namespace
    wanted: dict[str, dict[str | None, list[str]]] = {}
    for t in templates:
        for name, key, _optional in t.secret_refs:
            wanted.setdefault(name, {}).setdefault(key, []).append(t.name)
    out = []
    for name, by_key in sorted(wanted.items()):
        users = ", ".join(sorted({u for us in by_key.values() for u in us}))
        keys = facts.secrets.get(name)
        need = sorted(set(STORE_KEYS if None in by_key else ()) | {k for k in by_key if k})
        if keys is None:
            out.append(Finding("store secret", False,
                               f"Secret {name} is not in namespace {ns} (read by {users}; optional there, so "
                               f"their pods would start without a store and cache nothing): create it in {ns} "
                               "with " + ", ".join(need) + " (docs/store.md)"))
        elif keys == FORBIDDEN:
            out.append(Finding("store secret", False, f"cannot read Secret {name} in {ns} to check its keys "
                                                      "(RBAC: deploy/cluster-view-rbac.yaml grants get on it)"))
        elif missing := [k for k in need if k not in keys]:
            out.append(Finding("store secret", False, f"Secret {name} in {ns} lacks {', '.join(missing)} "
                                                      f"(read by {users}; docs/store.md)"))
        else:
            out.append(Finding("store secret", True, f"Secret {name} in {ns} holds {', '.join(need)}"))
    return out


def image_findings(templates: list[Template], verdicts: list[Verdict], nodes: list[Node],
                   facts: ClusterFacts) -> list[Finding]:
    """Each node a template can be placed on holds its image, or the template pulls it with a pull Secret."""
    by_name = {n.name: n for n in nodes}
    out = []
    for t, v in zip(templates, verdicts, strict=True):
        if not t.image:
            continue
        if t.pull_secrets:
            absent = [s for s in t.pull_secrets if facts.secrets.get(s) is None]
            if absent:
                out.append(Finding("images", False, f"{t.name}: imagePullSecrets {', '.join(absent)} not in "
                                                    f"namespace {facts.namespace}: pods end in ErrImagePull"))
            else:
                out.append(Finding("images", True, f"{t.name}: pulls {t.image} with imagePullSecrets "
                                                   f"{', '.join(t.pull_secrets)}"))
            continue
        want = normalize_image(t.image)
        for node in v.fits:
            held = {normalize_image(i) for i in by_name[node].images}
            if want in held:
                out.append(Finding("images", True, f"{t.name}: {node} holds {t.image}"))
            else:
                out.append(Finding("images", False,
                                   f"{t.name}: node {node} does not hold image {t.image} and the template has no "
                                   "imagePullSecrets: its pods would end in ErrImagePull. On that node: "
                                   "sudo k3s ctr images import IMAGE.tar (docs/cluster.md)"))
    return out


def runtime_findings(templates: list[Template], nodes: list[Node]) -> list[Finding]:
    """Each node a RuntimeClass template selects: the NVIDIA runtime proven by its allocatable GPUs."""
    out, seen = [], set()
    for t in templates:
        if not t.runtime_class:
            continue
        for node in nodes:
            if node.name in seen or any(node.labels.get(k) != v for k, v in t.node_selector.items()):
                continue
            seen.add(node.name)
            gpus = node.allocatable.get(GPU, "0")
            if quantity(gpus) > 0:
                out.append(Finding("nvidia runtime", True,
                                   f"{node.name}: runtime {t.runtime_class} works (NVIDIA's device plugin runs "
                                   f"there with it and advertises {GPU}: {gpus})"))
            else:
                out.append(Finding("nvidia runtime", False,
                                   f"{node.name}: runtime {t.runtime_class} not proven: no allocatable {GPU}. K3s "
                                   f"creates RuntimeClass {t.runtime_class} on every cluster, but the node's "
                                   "handler exists only if the NVIDIA container toolkit was installed before the "
                                   "K3s agent started: install it, then `sudo systemctl restart k3s-agent` "
                                   "(docs/cluster.md)"))
    return out


def format_findings(findings: list[Finding]) -> str:
    return "\n".join(f"{f.step}: {'ok' if f.ok else 'NOT ok'}: {f.text}" for f in findings)


def read_facts(api_client, namespace: str, templates: list[Template]) -> ClusterFacts:
    """The ServiceAccount and the Secrets' key names (every call with a timeout)."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)

    def read(call, found):
        try:
            return found(call(_request_timeout=10))
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status == 403:
                return FORBIDDEN
            raise

    account = read(lambda **kw: core.read_namespaced_service_account(SERVICE_ACCOUNT, namespace, **kw),
                   lambda sa: True)
    secrets = {name: read(lambda n=name, **kw: core.read_namespaced_secret(n, namespace, **kw),
                          lambda s: set((s.data or {}).keys()))
               for name in sorted(secret_names(templates))}
    return ClusterFacts(namespace, bool(account) if account != FORBIDDEN else FORBIDDEN, secrets)
