"""`hilci init`: a working project written into a repository, so `hilci run` passes at once on a fresh machine.

What it writes, each file a starting point the project owns from then on: the pipeline module (a `check` stage
body to fill in, hilci's `hil` and `report` stages), hilci.yaml naming that pipeline and its one board, pod
templates for Jenkins, an emulated rig and the board's real rig, a HIL suite with its conftest, a .gitignore
and the Jenkinsfile rendered from the pipeline. An existing file is never overwritten: init refuses and names it
(a .gitignore of the repository's own gets the lines it lacks).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hilci.errors import UsageError

DEFAULT_MODULE = "hilci_pipeline"  # a name no repository's own folders (ci/, tests/, conversion/) collide with
DEFAULT_BOARD = "orin-nano"

PIPELINE_PY = '''\
"""This project's pipeline, named once in hilci.yaml (`pipeline: {module}:PIPELINE`): every hilci command and the
Jenkinsfile run it. Each stage runs `hilci stage NAME` with a StageContext (ctx.root, ctx.settings, ctx.case,
ctx.gate, ctx.run_child); docs/library.md in hilci's repository explains every field."""

from __future__ import annotations

import sys

from hilci.pipeline.model import Pipeline, Stage


def check(ctx) -> None:
    """Your build, lint and unit tests: fill this in. Each tool run is one testcase of the stage's JUnit, e.g.
    `ctx.run_child([sys.executable, "-m", "pytest", "tests"], timeout_s=600)` and `ctx.case("unit tests", ...)`."""
    proc = ctx.run_child([sys.executable, "--version"], timeout_s=60)
    ctx.case("python", failure=None if proc.returncode == 0 else proc.output[-2000:], stdout=proc.output)


PIPELINE = Pipeline(
    stages=(
        Stage(name="check", pod="cpu", does="build, lint, unit tests (fill in {module}.check)",
              entry="{module}:check", inputs=("{module}.py",), timeout_s=900),
        Stage(name="hil", pod="jetson", matrix=True, does="pytest hil_tests on the rig",
              entry="hilci.builtin.hil:hil", settings="hilci.builtin.settings:HilSettings",
              inputs=("hil_tests/**",), outputs=("artifacts/hil",), needs=("check",), archive=("artifacts/hil/**",),
              rerun_on_real_rig=True, timeout_s=1200),
        Stage(name="report", pod="cpu", does="merge JUnit, HTML report", entry="hilci.builtin.stages:report",
              settings="hilci.builtin.settings:ReportSettings", gathers=True, cacheable=False,
              archive=("reports/**",), timeout_s=600),
    ),
    default_rig="hil_tests/rigs/sim.yaml",  # `hilci run` tests against the emulated rig
)
'''

HILCI_YAML = '''\
# hilci's settings for this project (docs/library.md). The pipeline every hilci command runs:
pipeline: {module}:PIPELINE
# Device kinds of this project's own modules (installed kind packages are found through their entry points):
kinds: []
# Jetson boards the matrix stages run on in Jenkins: name -> its rig (podtemplates/jetson-<name>.yaml).
boards:
  {board}: hil_tests/rigs/{board}.yaml
hil:
  tests: hil_tests
  pytest_args: []
report:
  title: {module} pipeline
'''

SIM_RIG = '''\
# The emulated rig `hilci run` uses: each device is an emulator on a pseudo-terminal, started by the plugin.
name: sim
platform: emulated
emulate: true
health_timeout_s: 3
sensor_window_s: 1.0
devices:
  imu:
    driver: imu
    baud: 921600
    rate_hz: 100
    rate_tolerance_pct: 5
    jitter_p99_ms: 10     # generous: a shared CI host; the board's rig keeps the real budget
'''

BOARD_RIG = '''\
# The {board}'s rig in the lab: a real device at a stable path (ls /dev/serial/by-id/).
name: {board}
platform: jetson
emulate: false
devices:
  imu:
    driver: imu
    port: /dev/serial/by-id/usb-your-imu-if00
    baud: 921600
    rate_hz: 100
    jitter_p99_ms: 1.5
'''

CONFTEST = '''\
"""HIL suites: hilci's pytest plugin (installed with hilci) gives --rig, a fixture per device kind (`imu`),
`gate`, each test's time limit and the actuators' safe state. Fixtures of this project's own go here."""
'''

TEST_IMU = '''\
"""The IMU streams: present, and at its rate. `pytest hil_tests --rig hil_tests/rigs/sim.yaml` runs them."""

import pytest

from hilci.hil import checks

pytestmark = pytest.mark.sensor


def test_imu_present(imu, gate):
    cap = imu.capture(0.5, max_messages=5)
    gate(checks.present(imu.device, len(cap.arrivals_ns), 5))


def test_imu_rate(imu, gate):
    window = imu.device.settings.window_s
    cap = imu.capture(window)
    gate(checks.enough(cap.arrivals_ns, imu.device, window), checks.rate(imu.device, cap.arrivals_ns))
'''

POD = '''\
# {what}. Jenkins's Kubernetes plugin starts it from the Jenkinsfile (`yamlFile`, container `hilci`); the image
# must hold Python, git and this project's dependencies (hilci among them).
apiVersion: v1
kind: Pod
metadata:
  labels:
    hilci.dev/pod: {pod}
spec:
  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
    runAsGroup: 1000
    seccompProfile:
      type: RuntimeDefault
{node}  containers:
    - name: hilci
      image: your-registry.example/your-ci-image:latest
      command: [sleep]
      args: [infinity]
      resources:
{resources}      securityContext:
        allowPrivilegeEscalation: false
        capabilities: {{drop: [ALL]}}
'''

CPU_NODE = "  nodeSelector:\n    kubernetes.io/arch: amd64\n"
CPU_RESOURCES = "        requests: {cpu: \"1\", memory: 2Gi}\n        limits: {cpu: \"2\", memory: 4Gi}\n"
JETSON_NODE = ("  runtimeClassName: nvidia\n  nodeSelector:\n    kubernetes.io/arch: arm64\n"
               "    hilci.dev/board: {board}\n  tolerations:\n    - key: hilci.dev/rig\n"
               "      operator: Exists\n      effect: NoSchedule\n")
JETSON_RESOURCES = "        limits: {\"nvidia.com/gpu\": 1}\n"

GITIGNORE_FILE = ".gitignore"
GITIGNORE = "artifacts/\nreports/\ndist/\n.hilci-cache/\n__pycache__/\n"


def files(module: str, board: str) -> dict[str, str]:
    """Every file init writes (but the Jenkinsfile, rendered from them), by path relative to the project."""
    fill = {"module": module, "board": board}
    return {
        f"{module}.py": PIPELINE_PY.format(**fill).replace("{{", "{").replace("}}", "}"),
        "hilci.yaml": HILCI_YAML.format(**fill),
        "hil_tests/rigs/sim.yaml": SIM_RIG,
        f"hil_tests/rigs/{board}.yaml": BOARD_RIG.format(**fill),
        "hil_tests/conftest.py": CONFTEST,
        "hil_tests/test_imu.py": TEST_IMU,
        "podtemplates/cpu.yaml": POD.format(what="CPU pod agent: the check and report stages", pod="cpu",
                                            node=CPU_NODE, resources=CPU_RESOURCES),
        f"podtemplates/jetson-{board}.yaml": POD.format(
            what=f"The {board}'s pod agent: the hil stage on its rig", pod=f"jetson-{board}",
            node=JETSON_NODE.format(board=board), resources=JETSON_RESOURCES),
        GITIGNORE_FILE: GITIGNORE,
    }


def init(root: Path, module: str = DEFAULT_MODULE, board: str = DEFAULT_BOARD) -> list[str]:
    """Write the project into `root`; the paths written. Refuses (UsageError) when any of them exists."""
    if not module.isidentifier():
        raise UsageError(f"--module {module!r}: expected a Python module name")
    if not board.replace("-", "").isalnum():
        raise UsageError(f"--board {board!r}: expected letters, digits and '-'")
    wanted = {**files(module, board), "Jenkinsfile": ""}
    existing = [rel for rel in wanted if (root / rel).exists() and rel != GITIGNORE_FILE]
    if existing:
        raise UsageError(f"{root}: {', '.join(existing)} already exist; init writes only into a repository "
                         "without them (nothing was written)")
    ignore = root / GITIGNORE_FILE
    if ignore.exists():  # a repository's own .gitignore is kept: the lines it lacks are added
        have = set(ignore.read_text().splitlines())
        missing = [line for line in GITIGNORE.splitlines() if line not in have]
        wanted[GITIGNORE_FILE] = ignore.read_text().rstrip("\n") + "\n" + "".join(f"{m}\n" for m in missing)
    for rel, text in wanted.items():
        if rel != "Jenkinsfile":
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
    (root / "Jenkinsfile").write_text(_jenkinsfile(root, module))
    return list(wanted)


def _jenkinsfile(root: Path, module: str) -> str:
    from hilci.jenkins.jenkinsfile import definition_file, render
    from hilci.pipeline.project import open_project

    project = open_project(f"{module}:PIPELINE", start=root, announce=False)
    return render(project.pipeline, project.spec, definition_file(project.spec, root))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="write a working project here: pipeline module, hilci.yaml, pod templates, "
                                    "an emulated rig, a HIL suite, the Jenkinsfile")
    p.add_argument("--module", default=DEFAULT_MODULE, help="the pipeline module's name (default %(default)s)")
    p.add_argument("--board", default=DEFAULT_BOARD, help="the Jetson board of the matrix (default %(default)s)")
    p.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    root = Path.cwd()
    written = init(root, args.module, args.board)
    for rel in written:
        print(f"wrote {rel}")
    print(f"hilci: a project in {root}: run `hilci run` (emulated rig), edit {args.module}.py's check stage, "
          "`hilci jenkinsfile --write` after changing the pipeline", file=sys.stderr)
    return 0
