"""The one pipeline definition: stages of DESIGN.md's table, in order. Both engines read this.

Each stage's `needs` says what it reads from another stage, and nothing more, so both engines run a stage as
soon as that is ready: `train` and `build` side by side, `hil` on the engine `convert` made (not on `build`).

The `quantize`, `convert` and `hil` stages join through their own modules (`hilci.conversion.stages`,
`hilci.builtin.hil`); each stage's `entry` is what `hilci stage NAME` calls.
"""

from __future__ import annotations

from hilci.pipeline.model import Board, Pipeline, Stage

CODE = ("ci/**/*.py", "conversion/**/*.py", "pyproject.toml")
# What the build's lint and unit tests read: the tests parse the Jenkinsfile (with tests/jenkinsfile_harness.groovy),
# the pod templates, images, deploy manifests, the DAG, docs, the Makefile, the lock and hilci.yaml.
REPOSITORY = ("tests/**", "hil_tests/**", "Jenkinsfile", "Makefile", "tox.ini", "constraints.txt", "setup.py",
              "hilci.yaml", "README.md", "podtemplates/**", "images/**", "deploy/**", "dags/**", "docs/**",
              "benchmarks/**", ".ci/**")
MODEL_CODE = ("conversion/**/*.py", "ci/results/measurements.py", "ci/results/junit.py", "ci/stage/**/*.py",
              "ci/util/**/*.py", "ci/errors.py")
# hil: pytest with hilci's plugin on the rig; pytest reads its options from pyproject.toml and $PYTEST_ADDOPTS.
# The rig is keyed by the stage's own rig file (hil_tests/rigs/*.yaml are not inputs: another board's rig is not
# read). ci/hil/** includes the emulators' camera frames.
HIL_CODE = ("ci/hil/**", "ci/builtin/hil.py", "ci/results/**/*.py", "ci/stage/**/*.py", "ci/util/**/*.py",
            "ci/errors.py", "hil_tests/*.py", "pyproject.toml")

PIPELINE = Pipeline(
    stages=(
        Stage(
            name="build",
            pod="cpu",
            does="wheel, ruff lint, unit tests",
            entry="hilci.builtin.stages:build",
            settings="hilci.builtin.settings:BuildSettings",
            # groovy parses the Jenkinsfile in the unit tests, which also run make and pgrep
            needs_tools=("groovy", "java", "make", "pgrep", "build", "ruff"),
            inputs=CODE + REPOSITORY,
            exact_inputs=True,  # ruff reads comments; the tests read files as text
            env=("PYTEST_ADDOPTS",),
            outputs=("dist",),
            tools=("ruff", "pytest", "build"),
            archive=("dist/*.whl",),
            timeout_s=1800,
        ),
        Stage(
            name="train",
            pod="gpu",
            does="FP32 training of the example perception model (accuracy gate)",
            entry="hilci.conversion.stages:train",
            settings="hilci.conversion.settings:TrainSettings",
            needs_tools=("torch", "sklearn"),
            inputs=MODEL_CODE,
            outputs=("artifacts/train",),
            needs=(),  # reads only the data and its own code: it trains while `build` runs its tests
            tools=("torch", "scikit-learn", "numpy"),
            archive=("artifacts/train/**",),
            timeout_s=3600,
        ),
        Stage(
            name="quantize",
            pod="gpu",
            does="PTQ and QAT (modelopt), Q/DQ ONNX export, TensorRT lint, ORT parity (drop, lint, parity gates)",
            entry="hilci.conversion.stages:quantize",
            settings="hilci.conversion.settings:QuantizeSettings",
            needs_tools=("torch", "modelopt", "onnx", "onnxruntime", "sklearn"),
            inputs=MODEL_CODE + ("artifacts/train/*.pt",),
            outputs=("artifacts/quantize",),
            needs=("train",),
            tools=("torch", "nvidia-modelopt", "onnx", "onnxruntime", "scikit-learn", "numpy"),
            archive=("artifacts/quantize/*.onnx", "artifacts/quantize/*.json", "artifacts/quantize/*.npz"),
            timeout_s=3600,
        ),
        Stage(
            name="convert",
            pod="jetson",
            matrix=True,
            does="engine build (TensorRT on Jetson, ONNX Runtime elsewhere), parity, benchmark (parity, latency gates)",
            entry="hilci.conversion.stages:convert",
            settings="hilci.conversion.settings:ConvertSettings",
            needs_tools=("onnx", "onnxruntime"),  # TensorRT is used where installed (backend: auto)
            inputs=MODEL_CODE + ("artifacts/quantize/*.onnx", "artifacts/quantize/*.npz"),
            outputs=("artifacts/convert",),
            needs=("quantize",),
            tools=("onnx", "onnxruntime", "numpy", "tensorrt", "cuda-python"),
            archive=("artifacts/convert/**/*.onnx", "artifacts/convert/**/*.plan", "artifacts/convert/**/*.json"),
            timeout_s=1800,
            uses_store=True,  # engines and timing caches
        ),
        Stage(
            name="hil",
            pod="jetson",
            matrix=True,
            does="pytest hil_tests on the rig",
            entry="hilci.builtin.hil:hil",
            settings="hilci.builtin.settings:HilSettings",
            inputs=HIL_CODE + ("artifacts/convert/engine.*",),
            env=("HILCI_HOST_LATE_MS", "PYTEST_ADDOPTS"),  # a simulated late host (ci/hil/hostclock.py)
            outputs=("artifacts/hil",),
            needs=("convert",),
            tools=("pytest", "pymavlink", "dynamixel-sdk", "pynmea2", "pyserial"),
            archive=("artifacts/hil/**",),
            rerun_on_real_rig=True,
            timeout_s=1200,
        ),
        Stage(
            name="report",
            pod="cpu",
            does="merge JUnit, HTML report",
            entry="hilci.builtin.stages:report",
            settings="hilci.builtin.settings:ReportSettings",
            needs=(),  # gathers: it waits for every other stage, whatever `needs` says
            gathers=True,
            cacheable=False,
            archive=("reports/**",),
            uses_store=True,  # history and regression gates
            timeout_s=600,
        ),
    ),
    boards=(
        Board(name="orin-nx", rig="hil_tests/rigs/orin-example.yaml"),
        Board(name="agx-orin", rig="hil_tests/rigs/agx-orin.yaml"),
    ),
)
