"""`hilci deviceplugin` end to end: the plugin (its own process, as the DaemonSet runs it) against the kubelet
stand-in on unix sockets, with the HIL emulators as the rig, wired like a real one (ports are links to ptys, as
/dev/serial/by-id names are links to ttys). Every wait is bounded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import pytest
import yaml

from hilci.hil.emulators.process import start
from hilci.hil.locks import DeviceLock
from hilci.hil.rig import load_rig
from tests.kubelet_standin import KubeletStandIn, wire_emulated_rig
from tests.scratch import child_env
from tests.test_hil_emulate import Lines

pytestmark = [pytest.mark.emulator, pytest.mark.server]  # what it needs: the fast tier leaves it out

ROOT = Path(__file__).resolve().parents[1]
HEALTH_BOUND_S = 15.0  # the goal is 10 s (benchmarks/cluster.py measures it); this only bounds the wait


class PluginProcess:
    """`python -m hilci deviceplugin ...`, its log read line by line (waits bounded) as `hilci emulate`'s test does."""

    def __init__(self, args: list[str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "hilci", "deviceplugin", *args], cwd=ROOT,
                                     env=child_env(PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.log = Lines(self.proc)

    def until(self, pattern: str, timeout_s: float = HEALTH_BOUND_S) -> str:
        return self.log.until(pattern, timeout_s)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@pytest.fixture
def rig():
    """An emulated robot (IMU, GNSS, servo) wired as the real rig `desk`; the emulators' handles."""
    folder = Path(tempfile.mkdtemp(prefix="hilci-dp-"))  # short: unix socket paths are limited to 107 bytes
    emus, sim, _ = wire_emulated_rig(folder, "desk")
    try:
        yield folder, emus, sim
    finally:
        emus.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def cluster_node(rig):
    """The kubelet stand-in and the plugin process serving the rig folder (plus a broken rig file)."""
    folder, emus, sim = rig
    sockets = folder / "dp"
    sockets.mkdir()
    (folder / "rigs" / "broken.yaml").write_text("name: broken\ndevices: [not, a, mapping\n")
    kubelet = KubeletStandIn(sockets).start()
    plugin = PluginProcess([str(folder / "rigs"), "--socket-dir", str(sockets), "--state-dir",
                            str(folder / "state"), "--interval", "0.5"])
    try:
        yield folder, emus, sim, kubelet, plugin
    finally:
        assert plugin.stop() == 0, "the plugin must exit cleanly on SIGTERM"
        kubelet.stop()


def test_registers_and_follows_the_rig_s_health_through_an_emulator_stop_and_restart(cluster_node):
    folder, emus, sim, kubelet, plugin = cluster_node
    reg = kubelet.wait(lambda k: k.registrations and k.registrations[0], HEALTH_BOUND_S, "a registration")
    assert (reg.version, reg.resource_name, reg.endpoint) == ("v1beta1", "hilci.dev/rig", "hilci-rig.sock")
    kubelet.wait(lambda k: k.options is not None, 5, "GetDevicePluginOptions")
    assert not kubelet.options.pre_start_required

    kubelet.wait_health("desk", "Healthy", HEALTH_BOUND_S)
    assert set(kubelet.lists[-1][1]) == {"desk", "broken"}  # one device per rig YAML
    # an unreadable rig YAML makes that rig Unhealthy, with the reason, and the others stay served
    assert kubelet.health("broken") == "Unhealthy"
    assert "broken.yaml: line" in plugin.until(r"rig broken: Unhealthy: rig file unreadable")

    gnss = emus.handles["gnss"]
    gnss.stop()  # the device goes silent (unplugged)
    kubelet.wait_health("desk", "Unhealthy", HEALTH_BOUND_S)
    assert "gnss" in plugin.until(r"rig desk: Unhealthy: ")
    assert kubelet.health("broken") == "Unhealthy"

    device = load_rig(sim).devices["gnss"]
    emus.handles["gnss"] = start(device, Path(gnss.port))  # plugged in again, at the same stable name
    kubelet.wait_health("desk", "Healthy", HEALTH_BOUND_S)
    plugin.until(r"rig desk: Healthy \(was Unhealthy\)")
    # re-plugged, its stable name may lead to another node now: the next allocation follows it
    nodes = {d.host_path for d in kubelet.allocate("desk").container_responses[0].devices}
    assert os.path.realpath(gnss.port) in nodes


def test_bad_command_lines_are_one_line_and_exit_2(tmp_path, capsys):
    from hilci import cli

    assert cli.main(["deviceplugin", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"hilci: error: {tmp_path / 'nowhere'}: no such rig file or folder"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "bench.yaml").write_text("name: x\n")
    (tmp_path / "b" / "bench.yaml").write_text("name: y\n")
    assert cli.main(["deviceplugin", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "device id 'bench' already used by" in capsys.readouterr().err
    assert cli.main(["deviceplugin", str(tmp_path / "a"), "--interval", "0"]) == 2


def test_allocate_hands_over_device_nodes_rig_yaml_and_locks_and_refuses_unknown_ids(cluster_node):
    folder, emus, sim, kubelet, plugin = cluster_node
    kubelet.wait_health("desk", "Healthy", HEALTH_BOUND_S)
    reply = kubelet.allocate("desk").container_responses[0]
    nodes = {os.path.realpath(h.port) for h in emus.handles.values()}
    assert {d.host_path for d in reply.devices} == nodes and all(n.startswith("/dev/pts/") for n in nodes)
    assert all(d.container_path == d.host_path and d.permissions == "rw" for d in reply.devices)
    assert reply.envs["HILCI_RIG"] == "/etc/hilci/rig.yaml"
    rig_mount = next(m for m in reply.mounts if m.container_path == "/etc/hilci/rig.yaml")
    assert rig_mount.read_only
    allocated = load_rig(rig_mount.host_path)  # what the pod reads: the rig, its ports pinned to the nodes
    assert {d.port for d in allocated.devices.values()} == nodes and allocated.name == "desk"
    locks = next(m for m in reply.mounts if m.container_path == reply.envs["HILCI_LOCK_DIR"])
    assert not locks.read_only and Path(locks.host_path).is_dir()

    with pytest.raises(grpc.RpcError) as err:
        kubelet.allocate("no-such-rig")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "no-such-rig" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        kubelet.allocate("broken")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "broken.yaml" in err.value.details()
    assert kubelet.allocate("desk").container_responses  # still serving after both refusals
    assert plugin.proc.poll() is None


def test_re_registers_when_the_kubelet_restarts(cluster_node):
    folder, emus, sim, kubelet, plugin = cluster_node
    kubelet.wait_health("desk", "Healthy", HEALTH_BOUND_S)
    kubelet.restart()  # every socket in the folder removed, a new kubelet.sock
    kubelet.wait(lambda k: len(k.registrations) >= 2, HEALTH_BOUND_S, "a second registration")
    assert (folder / "dp" / "hilci-rig.sock").is_socket()
    before = len(kubelet.lists)
    kubelet.wait(lambda k: len(k.lists) > before, HEALTH_BOUND_S, "a ListAndWatch list after the restart")
    assert kubelet.allocate("desk").container_responses


def test_a_refused_registration_is_retried_with_back_off(rig):
    folder, emus, sim = rig
    sockets = folder / "dp"
    sockets.mkdir()
    kubelet = KubeletStandIn(sockets)
    kubelet.refuse = 2
    kubelet.start()
    plugin = PluginProcess([str(folder / "rigs"), "--socket-dir", str(sockets), "--state-dir",
                            str(folder / "state"), "--interval", "0.5"])
    try:
        assert "UNAVAILABLE" in plugin.until(r"registration with .* failed .*retrying in 0.5 s")
        plugin.until(r"retrying in 1.0 s")
        kubelet.wait(lambda k: k.registrations, HEALTH_BOUND_S, "the third registration")
        kubelet.wait_health("desk", "Healthy", HEALTH_BOUND_S)
    finally:
        assert plugin.stop() == 0
        kubelet.stop()


def test_a_rig_held_by_a_test_is_not_probed_and_keeps_its_verdict(cluster_node):
    folder, emus, sim, kubelet, plugin = cluster_node
    kubelet.wait_health("desk", "Healthy", HEALTH_BOUND_S)
    imu = emus.handles["imu"]
    lock = DeviceLock(imu.port, "desk:imu", timeout=5, folder=folder / "state" / "locks")
    with lock:  # a test talks to the IMU: the plugin must not open it
        imu.stop()
        time.sleep(2.0)  # four probe intervals: each found the lock held
        assert kubelet.health("desk") == "Healthy", "a probe ran while a test held the rig"
    kubelet.wait_health("desk", "Unhealthy", HEALTH_BOUND_S)  # let go: the next probe finds it silent
    assert "imu" in plugin.until(r"rig desk: Unhealthy: ")


def test_a_rig_failing_its_probes_is_quarantined_unhealthy_with_why_skipped_by_sessions_and_back_when_it_answers(
        cluster_node):
    from hilci.hil import fleet
    from hilci.results import junit

    folder, emus, sim, kubelet, plugin = cluster_node
    real = folder / "rigs" / "desk.yaml"
    data = yaml.safe_load(real.read_text())
    real.write_text(yaml.safe_dump({**data, "quarantine": {"after": 2, "max_share": 1}}))  # read at the next probe
    kubelet.wait_health("desk", "Healthy", HEALTH_BOUND_S)
    gnss = emus.handles["gnss"]
    gnss.stop()
    line = plugin.until(r"rig desk quarantined: 2 consecutive failed health probes, the last: health probe "
                        r"\(device plugin\): ")
    assert "gnss" in line
    plugin.until(r"rig desk: Unhealthy: rig desk is quarantined since ")
    kubelet.wait_health("desk", "Unhealthy", HEALTH_BOUND_S)
    locks = folder / "state" / "locks"
    why = fleet.quarantined("desk", fleet.folder(locks))
    assert why
    # the lock path sees the same state: a session given the rig does not open it and says why
    xml = folder / "junit.xml"
    env = child_env(HILCI_LOCK_DIR=str(locks))
    proc = subprocess.run([sys.executable, "-m", "pytest", "hil_tests/test_sensors.py", "--rig", str(real),
                           "--hil-pick", "-k", "TestGnss and test_present", f"--junitxml={xml}", "-q", "-p",
                           "no:cacheprovider", "-o", "junit_family=xunit2"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert f"hil: {why}: skipped" in proc.stdout, proc.stdout + proc.stderr
    assert xml.exists(), proc.stdout + proc.stderr
    cases = [c for c in junit.read_cases(xml) if c.status != junit.SKIPPED]
    assert cases and all(c.failure_class == junit.INFRASTRUCTURE and why in c.message for c in cases)

    device = load_rig(sim).devices["gnss"]
    emus.handles["gnss"] = start(device, Path(gnss.port))  # it answers again: the next probe brings it back
    plugin.until(r"rig desk back in service: health probe passed \(device plugin\)")
    kubelet.wait_health("desk", "Healthy", HEALTH_BOUND_S)
    assert fleet.quarantined("desk", fleet.folder(locks)) == ""
