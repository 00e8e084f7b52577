"""A kubelet stand-in for the rig device plugin: the Registration service on `kubelet.sock`, and the client side
of the DevicePlugin service, as the kubelet's device manager drives it.

On Register it dials the plugin's socket, calls GetDevicePluginOptions, and keeps a ListAndWatch stream open,
recording every device list it receives. `restart()` does what a kubelet restart does to the folder: every socket
in it is removed and a new `kubelet.sock` appears.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import yaml

from hilci.hil.emulators.process import RigEmulators
from hilci.hil.rig import load_rig
from hilci.kube.deviceplugin import api_pb2, api_pb2_grpc

ROBOT = {  # the emulated robot each rig stands for: IMU, GNSS and one servo
    "imu": {"driver": "imu", "baud": 921600, "rate_hz": 200},
    "gnss": {"driver": "gnss", "baud": 115200, "rate_hz": 10},
    "servo": {"driver": "servo", "baud": 1000000, "ids": [1]},
}


def wire_emulated_rig(folder: Path, name: str) -> tuple[RigEmulators, Path, Path]:
    """Start a robot's emulators and write the rig YAML a node would hold for it: `emulate: false`, ports naming
    the emulators' links (as /dev/serial/by-id names link to ttys). Returns the emulators, the emulated rig
    (to restart a device from) and the real-rig YAML under `folder/rigs/`."""
    folder.mkdir(parents=True, exist_ok=True)
    sim = folder / f"{name}-sim.yaml"
    sim.write_text(yaml.safe_dump({"name": name, "emulate": True, "health_timeout_s": 2, "devices": ROBOT}))
    ports = folder / f"{name}-ports"
    ports.mkdir(parents=True)
    emus = RigEmulators(load_rig(sim), ports).start()
    rigs = folder / "rigs"
    rigs.mkdir(exist_ok=True)
    real = rigs / f"{name}.yaml"
    real.write_text(yaml.safe_dump({"name": name, "emulate": False, "health_timeout_s": 2, "devices": {
        dev: {"driver": h.kind, "port": h.port, "baud": ROBOT[dev]["baud"]} for dev, h in emus.handles.items()}}))
    return emus, sim, real


class KubeletStandIn(api_pb2_grpc.RegistrationServicer):
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.registrations: list[api_pb2.RegisterRequest] = []
        self.options: api_pb2.DevicePluginOptions | None = None
        self.lists: list[tuple[float, dict[str, str]]] = []  # (monotonic time, {id: health})
        self.changed = threading.Condition()
        self.server: grpc.Server | None = None
        self.channel: grpc.Channel | None = None
        self.stub: api_pb2_grpc.DevicePluginStub | None = None
        self.refuse = 0  # refuse this many registrations first (a kubelet still starting, a resource name taken)

    @property
    def socket(self) -> Path:
        return self.folder / "kubelet.sock"

    def start(self) -> KubeletStandIn:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        api_pb2_grpc.add_RegistrationServicer_to_server(self, server)
        server.add_insecure_port(f"unix://{self.socket}")
        server.start()
        self.server = server
        return self

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.server is not None:
            self.server.stop(grace=0).wait(5)
            self.server = None

    def restart(self) -> None:
        """Stop, wipe every socket in the folder (the kubelet does), start again on a new kubelet.sock."""
        self.stop()
        for path in self.folder.iterdir():
            if path.is_socket():
                path.unlink()
        self.start()

    # --- Registration ----------------------------------------------------------------------------------
    def Register(self, request, context):
        if request.version != "v1beta1":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported version {request.version}")
        if self.refuse > 0:
            self.refuse -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "device manager not ready")
        with self.changed:
            self.registrations.append(request)
            self.changed.notify_all()
        threading.Thread(target=self._dial, args=(request.endpoint,), daemon=True).start()
        return api_pb2.Empty()

    def _dial(self, endpoint: str) -> None:
        """What the device manager does after a registration: options, then a ListAndWatch stream."""
        if self.channel is not None:
            self.channel.close()
        self.channel = grpc.insecure_channel(f"unix://{self.folder / endpoint}")
        self.stub = api_pb2_grpc.DevicePluginStub(self.channel)
        self.options = self.stub.GetDevicePluginOptions(api_pb2.Empty(), timeout=5)
        try:
            for response in self.stub.ListAndWatch(api_pb2.Empty()):
                with self.changed:
                    self.lists.append((time.monotonic(), {d.ID: d.health for d in response.devices}))
                    self.changed.notify_all()
        except grpc.RpcError:
            pass  # the stream ends when the plugin or this stand-in stops

    # --- what tests ask --------------------------------------------------------------------------------
    def wait(self, predicate, timeout: float, what: str):
        """Block until `predicate(self)` is truthy, at most `timeout` seconds; fail naming `what`."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"kubelet stand-in: {what} not seen within {timeout:g} s; "
                                         f"registrations {len(self.registrations)}, last list "
                                         f"{self.lists[-1][1] if self.lists else None}")
                self.changed.wait(min(left, 0.2))

    def health(self, device: str) -> str | None:
        return self.lists[-1][1].get(device) if self.lists else None

    def wait_health(self, device: str, health: str, timeout: float) -> float:
        """Wait until the latest list says `health` for `device`; return when that list arrived."""
        self.wait(lambda k: k.health(device) == health, timeout, f"{device} {health}")
        return self.lists[-1][0]

    def allocate(self, *ids: str) -> api_pb2.AllocateResponse:
        return self.stub.Allocate(api_pb2.AllocateRequest(container_requests=[
            api_pb2.ContainerAllocateRequest(devices_ids=list(ids))]), timeout=10)
