"""The rig device plugin: advertises `hilci.dev/rig` to the kubelet, one device per rig YAML, with real health.

Kubelet Device Plugin API v1beta1 (gRPC over unix sockets in the kubelet's device-plugins folder):
the plugin serves `DevicePlugin` on its own socket, then calls `Registration.Register` on `kubelet.sock`. The
kubelet then opens ListAndWatch (the device list, sent again on every health change) and calls Allocate when it
starts a container that asked for `hilci.dev/rig`. When the kubelet restarts it wipes the folder and makes a new
`kubelet.sock`: the plugin notices (its own socket gone, or kubelet.sock replaced), serves again and re-registers.

Health is probed per rig in its own thread (`righealth.probe_rig`): a rig whose devices all answer is Healthy;
a silent device, a missing port or an unreadable rig YAML make it Unhealthy, with the reason in the log. A rig
that a test is using (its device locks held) is not probed and keeps its last verdict. Each probe goes into the
fleet state the sessions share (`hilci.hil.fleet`): a quarantined rig is Unhealthy with why, whatever it answers
while a session holds it; its next passing probe brings it back.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import yaml

from hilci.kube.deviceplugin import api_pb2, api_pb2_grpc, liveness, righealth
from hilci.kube.resources import RIG

log = logging.getLogger("hilci.deviceplugin")

API_VERSION = "v1beta1"
RESOURCE = RIG
HEALTHY, UNHEALTHY = "Healthy", "Unhealthy"
KUBELET_DIR = Path("/var/lib/kubelet/device-plugins")
KUBELET_SOCKET = "kubelet.sock"
PLUGIN_SOCKET = "hilci-rig.sock"
STATE_DIR = Path("/run/hilci")  # shared with the pods it allocates to: allocated rig files and device locks
RIG_IN_CONTAINER = "/etc/hilci/rig.yaml"
RPC_TIMEOUT_S = 5.0


@dataclass
class RigSlot:
    """One advertised device: a rig YAML, its current verdict and why."""

    id: str
    path: Path
    health: str = UNHEALTHY
    reason: str = "not probed yet"
    probed: bool = False
    finished: float = 0.0  # wall time its last probe finished (or its health thread started): the liveness check


def device_id(path: Path) -> str:
    """The device ID the kubelet sees: the rig file's name without `.yaml` (at most 63 characters)."""
    return path.name.rsplit(".", 1)[0][:63]


class RigDevicePlugin(api_pb2_grpc.DevicePluginServicer):
    """Serves the DevicePlugin service for a set of rig YAMLs and keeps their health current."""

    def __init__(self, rig_paths: list[Path], socket_dir: Path = KUBELET_DIR, state_dir: Path = STATE_DIR,
                 interval_s: float = 2.0, stale_after_s: float | None = None):
        self.slots: dict[str, RigSlot] = {}
        for path in rig_paths:
            slot = RigSlot(device_id(path), Path(path).absolute())
            if slot.id in self.slots:
                raise ValueError(f"{path}: device id {slot.id!r} already used by {self.slots[slot.id].path}")
            self.slots[slot.id] = slot
        self.socket_dir = Path(socket_dir)
        self.state_dir = Path(state_dir)
        self.lock_dir = self.state_dir / "locks"
        self.interval_s = interval_s
        self.stale_after_s = liveness.stale_after(interval_s) if stale_after_s is None else stale_after_s
        self.changed = threading.Condition()
        self.version = 0  # bumped on every health change; ListAndWatch streams wake on it
        self.stopping = threading.Event()
        self.server: grpc.Server | None = None
        self.registrations = 0
        self._threads: list[threading.Thread] = []

    # --- health ----------------------------------------------------------------------------------------
    def set_health(self, slot: RigSlot, health: str, reason: str) -> None:
        with self.changed:
            slot.probed = True
            if (slot.health, slot.reason) == (health, reason):
                return
            was = slot.health
            slot.health, slot.reason = health, reason
            self.version += 1
            self.changed.notify_all()
        if health == HEALTHY:
            log.info("rig %s: %s (was %s)", slot.id, HEALTHY, was)
        else:
            log.warning("rig %s: %s: %s", slot.id, UNHEALTHY, reason)

    def probe_once(self, slot: RigSlot) -> None:
        """Load the rig YAML afresh (an edit takes effect without a restart) and ask its devices."""
        try:
            rig = righealth.load_rig(slot.path)
        except righealth.RigError as exc:
            self.set_health(slot, UNHEALTHY, f"rig file unreadable: {exc}")
            return
        if rig.emulate:
            self.set_health(slot, UNHEALTHY, f"{slot.path}: an emulated rig (emulate: true) has no devices here")
            return
        probe = righealth.probe_rig(rig, self.lock_dir)
        try:
            quarantined, line = righealth.fleet_verdict(rig, probe, self.lock_dir)
        except OSError as exc:
            quarantined, line = "", ""
            log.warning("rig %s: fleet state not read or written (%s)", slot.id, exc)
        if line:
            log.warning("%s", line)
        if quarantined:  # out of service until a passing probe or `hilci rigs release`
            self.set_health(slot, UNHEALTHY, quarantined)
            return
        if probe.in_use:
            log.debug("rig %s: in use by a test, keeping %s (%s)", slot.id, slot.health, probe.reason)
            return
        self.set_health(slot, HEALTHY if probe.healthy else UNHEALTHY, probe.reason)

    def _watch(self, slot: RigSlot) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                self.probe_once(slot)
            except Exception as exc:  # never let one rig's surprise end its health loop
                self.set_health(slot, UNHEALTHY, f"probe failed: {type(exc).__name__}: {exc}")
            slot.finished = time.time()
            self.stopping.wait(self.pause_after(slot, time.monotonic() - started))

    def pause_after(self, slot: RigSlot, took_s: float) -> float:
        """How long to wait before probing `slot` again. A failing probe waits out its timeouts while it holds the
        rig's lock: back to back, a session waiting for that lock would find it free ~2 % of the time and give
        up. After an unhealthy probe the rig is left alone at least as long as the probe held it (within the
        liveness bound, so the heartbeat stays fresh)."""
        pause = self.interval_s - took_s
        if slot.health == UNHEALTHY:
            pause = max(pause, min(took_s, self.stale_after_s / 2 - took_s))
        return max(0.05, pause)

    def devices(self) -> list[api_pb2.Device]:
        with self.changed:
            return [api_pb2.Device(ID=s.id, health=s.health) for s in self.slots.values()]

    # --- the DevicePlugin service ----------------------------------------------------------------------
    def GetDevicePluginOptions(self, request, context):
        return api_pb2.DevicePluginOptions(pre_start_required=False, get_preferred_allocation_available=False)

    def ListAndWatch(self, request, context):
        seen = -1
        while not self.stopping.is_set() and context.is_active():
            with self.changed:
                if seen == self.version:
                    self.changed.wait(timeout=1.0)
                    if seen == self.version:
                        continue
                seen = self.version
            yield api_pb2.ListAndWatchResponse(devices=self.devices())

    def GetPreferredAllocation(self, request, context):
        return api_pb2.PreferredAllocationResponse(container_responses=[
            api_pb2.ContainerPreferredAllocationResponse(deviceIDs=list(r.available_deviceIDs)[:r.allocation_size])
            for r in request.container_requests])

    def PreStartContainer(self, request, context):
        return api_pb2.PreStartContainerResponse()

    def Allocate(self, request, context):
        responses = []
        for creq in request.container_requests:
            ids = list(creq.devices_ids)
            unknown = [i for i in ids if i not in self.slots]
            if unknown:
                context.abort(grpc.StatusCode.NOT_FOUND, f"unknown rig device {', '.join(unknown)} "
                              f"(this node serves: {', '.join(self.slots) or 'none'})")
            if len(ids) != 1:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"a container gets exactly one rig ({RESOURCE}: 1), asked for {len(ids)}: {ids}")
            try:
                responses.append(self.allocate_one(self.slots[ids[0]]))
            except (righealth.RigError, righealth.DeviceError, OSError) as exc:
                log.warning("allocate %s: %s", ids[0], exc)
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"rig {ids[0]}: {exc}")
        return api_pb2.AllocateResponse(container_responses=responses)

    def allocate_one(self, slot: RigSlot) -> api_pb2.ContainerAllocateResponse:
        """The rig's device nodes, the rig YAML (ports pinned to those nodes) read-only, and the shared locks."""
        rig = righealth.load_rig(slot.path)
        nodes = righealth.device_nodes(rig)
        data = yaml.safe_load(slot.path.read_text())
        for name, node in nodes.items():
            data["devices"][name]["port"] = node  # the name the container sees, so locks agree across pods
        allocated = self.state_dir / "allocated" / f"{slot.id}.yaml"
        allocated.parent.mkdir(parents=True, exist_ok=True)
        tmp = allocated.with_suffix(".tmp")
        tmp.write_text(f"# {slot.path} as allocated {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}: "
                       "ports resolved to this node's device nodes\n" + yaml.safe_dump(data, sort_keys=False))
        tmp.chmod(0o644)
        os.replace(tmp, allocated)
        log.info("allocate rig %s: %s", slot.id, ", ".join(f"{n}={p}" for n, p in nodes.items()))
        return api_pb2.ContainerAllocateResponse(
            envs={"HILCI_RIG": RIG_IN_CONTAINER, "HILCI_LOCK_DIR": str(self.lock_dir), "HILCI_RIG_ID": slot.id},
            mounts=[api_pb2.Mount(container_path=RIG_IN_CONTAINER, host_path=str(allocated), read_only=True),
                    api_pb2.Mount(container_path=str(self.lock_dir), host_path=str(self.lock_dir),
                                  read_only=False)],
            devices=[api_pb2.DeviceSpec(container_path=node, host_path=node, permissions="rw")
                     for node in dict.fromkeys(nodes.values())])

    # --- serving and registering -----------------------------------------------------------------------
    @property
    def socket(self) -> Path:
        return self.socket_dir / PLUGIN_SOCKET

    @property
    def kubelet_socket(self) -> Path:
        return self.socket_dir / KUBELET_SOCKET

    def start_health(self) -> None:
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        self.lock_dir.chmod(0o1777)  # like /tmp: every pod's user may create a lock, none may remove another's
        for slot in self.slots.values():
            slot.finished = time.time()
            t = threading.Thread(target=self._watch, args=(slot,), name=f"health-{slot.id}", daemon=True)
            t.start()
            self._threads.append(t)

    def serve(self) -> None:
        """(Re)create our socket and serve the DevicePlugin service on it."""
        if self.server is not None:
            self.server.stop(grace=0)
        self.socket.unlink(missing_ok=True)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="deviceplugin"))
        api_pb2_grpc.add_DevicePluginServicer_to_server(self, server)
        server.add_insecure_port(f"unix://{self.socket}")
        server.start()
        self.server = server

    def register(self) -> None:
        """Tell the kubelet where we serve; raises grpc.RpcError when it does not accept."""
        with grpc.insecure_channel(f"unix://{self.kubelet_socket}") as channel:
            stub = api_pb2_grpc.RegistrationStub(channel)
            stub.Register(api_pb2.RegisterRequest(
                version=API_VERSION, endpoint=PLUGIN_SOCKET, resource_name=RESOURCE,
                options=api_pb2.DevicePluginOptions()), timeout=RPC_TIMEOUT_S)
        self.registrations += 1
        log.info("registered %s with the kubelet (%s), %d rigs: %s", RESOURCE, self.kubelet_socket,
                 len(self.slots), ", ".join(self.slots))

    def run(self, poll_s: float = 0.5) -> None:
        """Serve, register, and do both again whenever the kubelet restarts, until `stop()`."""
        self.start_health()
        kubelet_id = None
        retry_at, backoff = 0.0, poll_s
        while not self.stopping.is_set():
            current = _inode(self.kubelet_socket)
            if current is None:
                if kubelet_id is not None:
                    log.warning("kubelet socket %s is gone: waiting for the kubelet", self.kubelet_socket)
                kubelet_id = None
            elif (current != kubelet_id or not self.socket.exists()) and time.monotonic() >= retry_at:
                try:
                    self.serve()
                    self.register()
                    kubelet_id, backoff = current, poll_s
                except grpc.RpcError as exc:
                    log.warning("registration with %s failed (%s): retrying in %.1f s", self.kubelet_socket,
                                exc.code().name if hasattr(exc, "code") else exc, backoff)
                    retry_at, backoff = time.monotonic() + backoff, min(backoff * 2, 10.0)
            self.heartbeat()
            self.stopping.wait(poll_s)
        if self.server is not None:
            self.server.stop(grace=1).wait(2)
        self.socket.unlink(missing_ok=True)

    def heartbeat(self) -> None:
        """For the liveness probe: this loop turns, and when each rig's last probe finished."""
        try:
            liveness.write(self.state_dir, {s.id: s.finished for s in self.slots.values()}, self.stale_after_s)
        except OSError as exc:
            log.warning("heartbeat not written (%s): the liveness probe will restart the plugin", exc)

    def stop(self) -> None:
        self.stopping.set()
        with self.changed:
            self.changed.notify_all()


def _inode(path: Path) -> tuple[int, int] | None:
    """Identifies one incarnation of a socket file: the kubelet's restart makes a new one."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns
