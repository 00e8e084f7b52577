"""The rig guard on a cluster (#18 item 6): a pod that dies by SIGKILL (OOM-killed, evicted, deleted) while its servo
holds torque. Its HIL session marked the servo in use in the lock folder the device plugin shares with pods; the
mark names the rig where the pod sees it (/etc/hilci/rig.yaml), which the guard beside the plugin finds among the
plugin's allocated rigs. Tested here with a real container: the Jetson image, started by `podman kube play`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hilci.hil import guard
from hilci.hil.emulators.process import start
from hilci.hil.rig import load_rig
from tests.test_rig_guard import HOLDING_TEST, SERVO, torque

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "ghcr.io/hilci/hilci-ci-jetson:r36.4"  # built by `make images` into the shared podman storage


def test_a_pods_mark_is_resolved_to_the_plugins_allocated_rig(tmp_path):
    """The mark says /etc/hilci/rig.yaml (the pod's view); on the node it is <state>/allocated/<id>.yaml, the one
    whose device of that name has that port."""
    locks, allocated = tmp_path / "locks", tmp_path / "allocated"
    locks.mkdir()
    allocated.mkdir()
    for slot, port in (("desk-1", "/dev/ttyUSB3"), ("desk-2", "/dev/ttyUSB7")):
        (allocated / f"{slot}.yaml").write_text(yaml.safe_dump({"name": slot, "devices": {
            "servo": {**SERVO, "port": port}}}))
    (allocated / "broken.yaml").write_text("devices: [")
    info = {"rig": "/etc/hilci/rig.yaml", "device": "servo", "port": "/dev/ttyUSB7"}
    assert guard.rig_file(info, locks) == str(allocated / "desk-2.yaml")
    assert guard.rig_file({**info, "port": "/dev/ttyUSB9"}, locks) == "/etc/hilci/rig.yaml"  # said as it was
    readable = tmp_path / "rig.yaml"
    readable.write_text("name: x\n")
    assert guard.rig_file({**info, "rig": str(readable)}, locks) == str(readable)


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "images" / "containers.conf")}
    return subprocess.run(["podman", *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.emulator
def test_a_pod_sigkilled_while_its_servo_holds_torque_is_made_safe_by_the_guard(tmp_path):
    if not shutil.which("podman"):
        pytest.fail("podman is missing: make container-tools (as root: apt-get install -y podman runc)")
    if podman("image", "exists", IMAGE).returncode != 0:
        pytest.fail(f"{IMAGE} is missing from podman's storage: run `make images`")
    emu_rig = tmp_path / "emu.yaml"
    emu_rig.write_text(yaml.safe_dump({"name": "bench", "emulate": True, "devices": {"servo": SERVO}}))
    servo = start(load_rig(emu_rig).devices["servo"], tmp_path / "servo-port")
    state = tmp_path / "state"  # the device plugin's --state-dir on the node
    locks, allocated, suite = state / "locks", state / "allocated", tmp_path / "suite"
    for folder in (locks, allocated, suite):
        folder.mkdir(parents=True)
    locks.chmod(0o777)
    # Allocate's rig file: the servo at the path the pod sees it (the same on the node, as Allocate pins it)
    (allocated / "bench-1.yaml").write_text(yaml.safe_dump({"name": "bench", "emulate": False, "devices": {
        "servo": {**SERVO, "port": servo.port}}}))
    (suite / "test_hold.py").write_text(HOLDING_TEST)
    name = f"hilci-guard-{os.getpid()}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "restartPolicy": "Never",
        "containers": [{
            "name": "hil", "image": IMAGE, "workingDir": "/suite",
            "command": ["python", "-m", "pytest", "/suite/test_hold.py", "--rig", "/etc/hilci/rig.yaml", "-s", "-q",
                        "-p", "no:cacheprovider", "--rootdir", "/suite"],
            "env": [{"name": "HILCI_LOCK_DIR", "value": "/run/hilci/locks"}],
            "securityContext": {"runAsUser": 0},  # the pty the emulator made is root's; a rig's ports are dialout's
            "volumeMounts": [{"name": "suite", "mountPath": "/suite"},
                             {"name": "rig", "mountPath": "/etc/hilci/rig.yaml", "readOnly": True},
                             {"name": "locks", "mountPath": "/run/hilci/locks"},
                             {"name": "servo", "mountPath": servo.port}]}],
        "volumes": [{"name": "suite", "hostPath": {"path": str(suite), "type": "Directory"}},
                    {"name": "rig", "hostPath": {"path": str(allocated / "bench-1.yaml"), "type": "File"}},
                    {"name": "locks", "hostPath": {"path": str(locks), "type": "Directory"}},
                    # a bind mount of the node's pty, not type CharDevice: podman would mknod a node of its own, which
                    # names no pty of the container's devpts (EIO), where Allocate's DeviceSpec hands over the node's
                    {"name": "servo", "hostPath": {"path": os.path.realpath(servo.port)}}]}}
    pod_file = tmp_path / "pod.yaml"
    pod_file.write_text(yaml.safe_dump(pod))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HILCI_")}}
    guard_proc = subprocess.Popen([sys.executable, "-m", "hilci", "rig-guard", "--lock-dir", str(locks)], env=env,
                                  stdout=subprocess.PIPE, text=True)
    try:
        assert "watching" in guard_proc.stdout.readline()
        played = podman("kube", "play", "--network", "host", str(pod_file), timeout=300)
        assert played.returncode == 0, played.stdout + played.stderr
        container = f"{name}-hil"
        deadline = time.monotonic() + 120
        while "HOLDING" not in (log := podman("logs", container).stdout):
            assert time.monotonic() < deadline and " failed" not in log and "error" not in log, log[-3000:]
            time.sleep(0.2)
        assert torque(servo) == 1
        (mark,) = locks.glob("*.holder")
        assert json.loads(mark.read_text())["rig"] == "/etc/hilci/rig.yaml"  # the pod's view, not the node's
        killed = podman("kill", "--signal", "KILL", container)
        t0 = time.monotonic()
        assert killed.returncode == 0, killed.stderr
        while torque(servo) == 1:
            assert time.monotonic() - t0 < 15, "torque still on 15 s after the pod's container was SIGKILLed"
            time.sleep(0.01)
        seconds = time.monotonic() - t0
        line = guard_proc.stdout.readline()
        print(f"pod SIGKILLed: torque off {seconds:.2f} s later; guard: {line.strip()}")
        assert "died without a clean release" in line and "made safe in" in line
        record = json.loads((locks / guard.RECORDS).read_text().splitlines()[-1])
        assert record["safe"].startswith("made safe") and record["probe"] == ""  # probed: it answers again
        assert not list(locks.glob("*.holder"))  # the next pod may have it
    finally:
        podman("kube", "down", str(pod_file), timeout=120)
        if guard_proc.poll() is None:
            guard_proc.kill()
        guard_proc.wait(5)
        servo.stop()
