"""The rig device plugin's liveness: a heartbeat its loop writes and `hilci deviceplugin --check` reads (the
DaemonSet's liveness probe), failing when the loop or a rig's probe is stuck; and the DaemonSet's manifest says
what Allocate really mounts. Every wait is bounded."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest
import yaml

from hilci import cli
from hilci.kube.deviceplugin import liveness
from hilci.kube.deviceplugin.server import RigDevicePlugin

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 15.0


def _until(predicate, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"never: {what}")


@pytest.fixture
def plugin(tmp_path):
    """A plugin serving two rig files (unreadable ones: their probe ends at once) with no kubelet around."""
    rigs = tmp_path / "rigs"
    rigs.mkdir()
    for name in ("bench-a", "bench-b"):
        (rigs / f"{name}.yaml").write_text("devices: [not, a, mapping\n")
    plugin = RigDevicePlugin(sorted(rigs.iterdir()), tmp_path / "sockets", tmp_path / "state", interval_s=0.05,
                             stale_after_s=1.0)
    (tmp_path / "sockets").mkdir()
    thread = threading.Thread(target=plugin.run, kwargs={"poll_s": 0.05}, daemon=True)
    thread.start()
    try:
        yield plugin, tmp_path / "state"
    finally:
        plugin.stop()
        thread.join(10)


def _check(state: Path, capsys) -> tuple[int, str]:
    rc = cli.main(["deviceplugin", "--check", "--state-dir", str(state)])
    return rc, capsys.readouterr().out.strip()


def test_a_running_plugin_is_alive(plugin, capsys):
    _, state = plugin
    _until(lambda: liveness.check(state) is None, "the heartbeat says alive")
    assert _check(state, capsys) == (0, "hilci deviceplugin: alive")


def test_a_stuck_probe_fails_the_check_naming_the_rig(plugin, capsys, monkeypatch):
    p, state = plugin
    _until(lambda: liveness.check(state) is None, "the heartbeat says alive")
    release = threading.Event()
    real = p.probe_once

    def wedged(slot):
        if slot.id == "bench-b":
            release.wait(WAIT_S * 2)  # a driver that never returns
        return real(slot)

    monkeypatch.setattr(p, "probe_once", wedged)
    try:
        problem = _until(lambda: liveness.check(state), "the check notices the stuck probe")
        assert problem.startswith("rig bench-b: no health probe finished for ") and "bench-a" not in problem
        rc, out = _check(state, capsys)
        assert rc == 1 and out.count("\n") == 0 and "rig bench-b" in out
    finally:
        release.set()


def test_a_stuck_loop_or_no_heartbeat_fails_the_check(tmp_path, capsys):
    assert _check(tmp_path, capsys)[0] == 1  # never started
    liveness.write(tmp_path, {"bench-a": time.time()}, 60.0)
    beat = json.loads((tmp_path / liveness.HEARTBEAT).read_text())
    assert liveness.check(tmp_path, now=beat["written"] + 1) is None
    assert "the registration loop is stuck" in liveness.check(tmp_path, now=beat["written"] + 61)
    (tmp_path / liveness.HEARTBEAT).write_text("{")
    assert "unreadable heartbeat" in liveness.check(tmp_path)


def test_the_daemonset_probes_liveness_with_the_check_on_its_own_state_dir():
    ds = yaml.safe_load((ROOT / "deploy" / "rig-device-plugin.yaml").read_text())
    container = next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "plugin")
    probe = container["livenessProbe"]["exec"]["command"]
    assert probe[:3] == ["hilci", "deviceplugin", "--check"]
    args = container["args"]
    assert probe[probe.index("--state-dir") + 1] == args[args.index("--state-dir") + 1]


def test_the_daemonset_runs_the_rig_guard_on_the_locks_it_shares_with_the_pods():
    """The guard beside the plugin watches the very lock folder Allocate hands the pods ($HILCI_LOCK_DIR), and
    sees the node's devices and the allocated rig files."""
    ds = yaml.safe_load((ROOT / "deploy" / "rig-device-plugin.yaml").read_text())
    containers = {c["name"]: c for c in ds["spec"]["template"]["spec"]["containers"]}
    plugin, guard = containers["plugin"], containers["rig-guard"]
    state = plugin["args"][plugin["args"].index("--state-dir") + 1]
    assert guard["command"] == ["hilci", "rig-guard", "--lock-dir", f"{state}/locks"]
    mounts = {m["mountPath"]: m["name"] for m in guard["volumeMounts"]}
    assert mounts == {state: "state", "/dev": "dev"}
    assert guard["resources"]["limits"]["memory"] and guard["resources"]["requests"]["cpu"]


@pytest.mark.emulator
@pytest.mark.server  # a kubelet stand-in and an emulated rig
def test_the_daemonset_s_reasons_name_only_mounts_allocate_makes(tmp_path):
    """hilci.dev/why-hostpath says which host folders reach a pod: exactly those Allocate hands the kubelet."""
    from tests.kubelet_standin import wire_emulated_rig

    ds = yaml.safe_load((ROOT / "deploy" / "rig-device-plugin.yaml").read_text())
    why = ds["metadata"]["annotations"]["hilci.dev/why-hostpath"]
    volumes = {v["hostPath"]["path"] for v in ds["spec"]["template"]["spec"]["volumes"] if "hostPath" in v}
    reasons = dict(re.findall(r"(/[\w/.-]+): (.*?)(?=; /|\.$)", why))
    assert set(reasons) == volumes, reasons
    emus, _sim, real = wire_emulated_rig(tmp_path / "node", "desk")
    try:
        state = Path("/run/hilci")  # the DaemonSet's --state-dir, mapped onto a scratch folder
        plugin = RigDevicePlugin([real], tmp_path / "sockets", tmp_path / "state")
        plugin.lock_dir.mkdir(parents=True)
        reply = plugin.allocate_one(plugin.slots["desk"])
    finally:
        emus.stop()
    mounted = {str(state / Path(m.host_path).relative_to(tmp_path / "state")) for m in reply.mounts}
    into_pods = {v for v, text in reasons.items() if "mount" in text and "never mounted" not in text}
    assert into_pods == {"/run/hilci"}
    assert all(m.startswith("/run/hilci/") for m in mounted), mounted
    assert "never mounted into a pod" in reasons["/etc/hilci/rigs"]
    for path in mounted:  # each mount Allocate makes is named in the reason, by its folder
        assert path.rsplit("/", 1)[0] in why or path in why, path


def test_a_failing_probe_leaves_the_rig_free_as_long_as_it_held_it(tmp_path):
    """A dead rig's probe holds the rig lock through its device timeouts (~2 s of every 2.05 s before): a test
    session waiting for that lock gave up. After an unhealthy probe the plugin now waits at least as long as
    the probe took, within the liveness bound; a healthy rig keeps the plain interval."""
    from hilci.kube.deviceplugin.server import HEALTHY, UNHEALTHY, RigSlot

    plugin = RigDevicePlugin([], tmp_path / "sockets", tmp_path / "state", interval_s=2.0, stale_after_s=20.0)
    slot = RigSlot("bench", tmp_path / "bench.yaml")
    slot.health = UNHEALTHY
    assert plugin.pause_after(slot, 1.95) == 1.95  # not 0.05: as long as the lock was held
    assert plugin.pause_after(slot, 9.0) == 1.0  # the heartbeat (stale after 20 s) still comes in time
    assert plugin.pause_after(slot, 0.1) == 1.9  # a quick failure: the plain interval
    slot.health = HEALTHY
    assert plugin.pause_after(slot, 1.95) == pytest.approx(0.05)
