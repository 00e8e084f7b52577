"""Pod templates and deploy manifests: load, validate offline (kubernetes-validate, strict) and our security rules.

kubectl cannot dry-run without an API server, so every `podtemplates/*.yaml` and `deploy/*.yaml` is checked
here: against the Kubernetes schema in strict mode (a misspelt field fails), and against the rules a CI pod
on a shared cluster must keep: no privileged containers, no host network/PID/IPC, hostPath only for the rig's
device paths, requests and limits on every container, and a non-root user.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hilci.errors import YamlFileError
from hilci.util.yamlfile import load_yaml

KUBERNETES_VERSION = "1.37"
# hostPath volumes a pod may mount: the stable names of serial devices and V4L2 cameras of a rig.
DEVICE_PATH_PREFIXES = ("/dev/serial/by-id", "/dev/serial/by-path", "/dev/v4l/by-id", "/dev/v4l/by-path")


class TemplateError(ValueError):
    """A pod template or manifest breaks the schema or a rule; the message names the file and the field."""


@dataclass
class Document:
    path: Path
    index: int  # position in a multi-document file
    data: dict

    @property
    def where(self) -> str:
        kind = self.data.get("kind", "?")
        name = (self.data.get("metadata") or {}).get("name", "")
        return f"{self.path}" + (f" (document {self.index + 1}: {kind} {name})" if self.index or name else "")


def load(path: Path) -> list[Document]:
    """Every YAML document of a file; malformed YAML names the line."""
    try:
        docs = load_yaml(path, all_documents=True)
    except YamlFileError as exc:
        raise TemplateError(str(exc)) from None
    out = []
    for i, data in enumerate(docs):
        if data is None:
            continue
        if not isinstance(data, dict) or "kind" not in data or "apiVersion" not in data:
            raise TemplateError(f"{path}: document {i + 1} is not a Kubernetes object (needs apiVersion and kind)")
        out.append(Document(path, i, data))
    return out


def validate_schema(doc: Document) -> None:
    """The Kubernetes schema, strict: unknown fields are errors."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc.data, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        field = ".".join(str(p) for p in exc.path) or "(top)"
        raise TemplateError(f"{doc.where}: {field}: {exc.message}") from None
    except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.VersionNotSupportedError) as exc:
        raise TemplateError(f"{doc.where}: {exc.message}") from None


def pod_spec(doc: Document) -> dict | None:
    """The pod spec of a Pod or of a workload's pod template; None for other kinds."""
    data = doc.data
    if data.get("kind") == "Pod":
        return data.get("spec") or {}
    template = ((data.get("spec") or {}).get("template") or {}).get("spec")
    if data.get("kind") == "CronJob":
        template = (((data.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}).get("template", {})
        template = template.get("spec")
    return template


# A node agent (the rig device plugin's DaemonSet) may break a rule only where its manifest says why, in an
# annotation on the workload: the reason is then read where the privilege is granted.
EXCEPTIONS = {
    "privileged": "hilci.dev/why-privileged",
    "root": "hilci.dev/why-root",
    "hostpath": "hilci.dev/why-hostpath",
}


def _excused(doc: Document, rule: str) -> bool:
    reason = ((doc.data.get("metadata") or {}).get("annotations") or {}).get(EXCEPTIONS[rule], "")
    return len(str(reason).split()) >= 5  # a reason, not a placeholder


def check_security(doc: Document) -> None:
    """Our rules for pods on a shared cluster; the first broken one raises, naming the field."""
    spec = pod_spec(doc)
    if spec is None:
        return
    where = doc.where
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            raise TemplateError(f"{where}: spec.{key}: true is not allowed (CI pods share the node)")
    for vol in spec.get("volumes") or []:
        host = vol.get("hostPath")
        if host is not None and not _excused(doc, "hostpath"):
            path = str(host.get("path", "")).rstrip("/")
            if not any(path == p or path.startswith(p + "/") for p in DEVICE_PATH_PREFIXES):
                raise TemplateError(f"{where}: volumes[{vol.get('name')}].hostPath.path {host.get('path')!r} is not a rig "
                                    f"device path (allowed under: {', '.join(DEVICE_PATH_PREFIXES)}; a node agent "
                                    f"says why in metadata.annotations.{EXCEPTIONS['hostpath']})")
    pod_sc = spec.get("securityContext") or {}
    containers = [("containers", c) for c in spec.get("containers") or []]
    containers += [("initContainers", c) for c in spec.get("initContainers") or []]
    for group, c in containers:
        name = f"spec.{group}[{c.get('name')}]"
        sc = c.get("securityContext") or {}
        privileged = sc.get("privileged") and _excused(doc, "privileged")
        if sc.get("privileged") and not privileged:
            raise TemplateError(f"{where}: {name}.securityContext.privileged: true is not allowed; "
                                "grant devices through a device plugin resource instead")
        if sc.get("allowPrivilegeEscalation", True) is not False and not privileged:
            raise TemplateError(f"{where}: {name}.securityContext.allowPrivilegeEscalation must be false")
        caps = (sc.get("capabilities") or {}).get("add") or []
        if caps:
            raise TemplateError(f"{where}: {name}.securityContext.capabilities.add {caps} is not allowed")
        resources = c.get("resources") or {}
        for kind in ("requests", "limits"):
            got = resources.get(kind) or {}
            missing = [r for r in ("cpu", "memory") if r not in got]
            if missing:
                raise TemplateError(f"{where}: {name}.resources.{kind} lacks {', '.join(missing)}")
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if (non_root is not True or user in (None, 0)) and not _excused(doc, "root"):
            raise TemplateError(f"{where}: {name} must run as a non-root user "
                                "(securityContext.runAsNonRoot: true and a runAsUser other than 0)")


def check_file(path: Path) -> list[Document]:
    """Load, validate against the schema and check the security rules; return the documents."""
    docs = load(path)
    if not docs:
        raise TemplateError(f"{path}: no Kubernetes object in the file")
    for doc in docs:
        validate_schema(doc)
        check_security(doc)
    return docs


def check_pod_template(path: Path) -> dict:
    """A pod template for Jenkins's Kubernetes plugin: exactly one Pod, with a `hilci` container."""
    docs = check_file(path)
    if len(docs) != 1 or docs[0].data.get("kind") != "Pod":
        raise TemplateError(f"{path}: a pod template holds exactly one Pod")
    annotations = (docs[0].data.get("metadata") or {}).get("annotations") or {}
    excused = sorted(set(annotations) & set(EXCEPTIONS.values()))
    if excused:
        raise TemplateError(f"{path}: metadata.annotations.{excused[0]}: a pod template runs CI code and gets no "
                            "exception from the security rules")
    names = [c.get("name") for c in docs[0].data["spec"].get("containers") or []]
    if "hilci" not in names:
        raise TemplateError(f"{path}: spec.containers has no 'hilci' container (the Jenkinsfile's defaultContainer)")
    return docs[0].data


def check_tree(root: Path) -> list[Path]:
    """Every pod template and deploy manifest under `root`; return the files checked."""
    checked = []
    for path in sorted((root / "podtemplates").glob("*.yaml")):
        check_pod_template(path)
        checked.append(path)
    for path in sorted((root / "deploy").glob("*.yaml")):
        check_file(path)
        checked.append(path)
    return checked
