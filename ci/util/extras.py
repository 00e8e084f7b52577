"""Optional packages: which extra of hilci installs each, and one import helper that says so when one is missing.

The core install (what a Jetson runs the HIL suites with) has no torch, OpenCV, TensorRT, Kubernetes or
Jenkins client. Every optional import in hilci goes through `require`, so a missing package is one line naming
the extra that installs it (`opencv is missing: pip install 'hilci[jetson]'`), not a chained traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType

from hilci.errors import StageError


@dataclass(frozen=True)
class Package:
    """An optional package: what users call it, the distribution pip installs and the extra that pulls it in."""

    label: str
    distribution: str
    extra: str
    note: str = ""

    def install(self) -> str:
        if self.extra:
            return f"pip install 'hilci[{self.extra}]'{self.note}"
        return f"pip install {self.distribution}{self.note}"


JETPACK = " (on a Jetson: JetPack's own build, in a venv made with --system-site-packages)"

# Top-level import name -> the package. The extras are those of pyproject.toml.
PACKAGES: dict[str, Package] = {
    "torch": Package("torch", "torch", "train"),
    "modelopt": Package("nvidia-modelopt", "nvidia-modelopt", "train"),
    "onnx": Package("onnx", "onnx", "train"),
    "onnxruntime": Package("onnxruntime", "onnxruntime", "train"),
    "sklearn": Package("scikit-learn", "scikit-learn", "train"),
    "tensorrt": Package("TensorRT", "tensorrt", "jetson", JETPACK),
    "cuda": Package("cuda-python", "cuda-python", "jetson"),
    "pycuda": Package("pycuda", "pycuda", "pycuda"),
    "cv2": Package("opencv", "opencv-python-headless", "jetson"),
    "kubernetes": Package("kubernetes", "kubernetes", "cluster"),
    "jenkins": Package("python-jenkins", "python-jenkins", "cluster"),
    "requests": Package("requests", "requests", "cluster"),
    "kubernetes_validate": Package("kubernetes-validate", "kubernetes-validate", "dev"),
    "build": Package("build", "build", "dev"),
    "ruff": Package("ruff", "ruff", "dev"),
    "importlinter": Package("import-linter", "import-linter", "dev"),
}


class MissingExtra(ImportError, StageError):
    """An optional package is not installed; the message names the extra that installs it.

    An ImportError (callers that fall back on a missing package still can) and a StageError (a stage that
    needs it ends with this one line, not a traceback)."""


def package(module: str) -> Package:
    """The optional package a module belongs to (by its top-level name); unknown names install by pip name."""
    top = module.split(".")[0]
    return PACKAGES.get(top) or Package(top, top, "")


def missing_message(module: str) -> str:
    pkg = package(module)
    return f"{pkg.label} is missing: {pkg.install()}"


def require(module: str) -> ModuleType:
    """`importlib.import_module(module)`, or MissingExtra naming the extra when the package is not installed.

    Only the package itself being absent becomes MissingExtra; a package that is there but fails inside its
    own imports (a broken CUDA install, say) keeps its own error, which says more."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name and (exc.name == top or module.startswith(exc.name + ".") or exc.name.startswith(top + ".")):
            raise MissingExtra(missing_message(module)) from None
        raise


def ensure(*modules: str) -> None:
    """MissingExtra for the first of `modules` that is not installed; nothing is imported (a stage checks its
    heavy packages up front and imports them when it needs them)."""
    for module in modules:
        if not installed(module):
            raise MissingExtra(missing_message(module))


def installed(module: str) -> bool:
    """Whether the top-level package of `module` is importable (found, not imported)."""
    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False
