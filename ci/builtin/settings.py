"""The hilci.yaml sections of hilci's own stages (`build`, `hil`, `report`) as typed settings classes: what is
project-specific about them (tests, lint targets, the wheel's name, where the engine comes from) is a setting,
so a project of its own uses them as they are.

The model stages type theirs in `hilci.conversion.settings`; `hilci.pipeline.config` reads every section through its
class, and `check_paths` names a path setting that does not exist (one line, before the first stage starts).
"""

from __future__ import annotations

from pathlib import Path

from hilci.util.settings import number, settings, str_list, text

DAY_S = 24 * 3600.0


def _missing(root: Path, where: str, field: str, paths: list[str]) -> list[str]:
    return [f"{where}{field}: {p}: no such file or folder in the project" for p in paths if not (root / p).exists()]


@settings
class BuildSettings:
    """Wheel, ruff and the unit tests, each with its own time limit."""

    wheel: str = text("", nonempty=False, help="the distribution's name: the build must make <wheel>-*.whl "
                                               "(default: any wheel)")
    lint: list = str_list(["."], help="paths ruff checks ([] skips the lint)")
    tests: str = text("tests", help="the unit tests' folder, run with pytest")
    wheel_timeout_s: float = number(900.0, gt=0, le=DAY_S)
    lint_timeout_s: float = number(300.0, gt=0, le=DAY_S)
    test_timeout_s: float = number(900.0, gt=0, le=DAY_S)
    unit_test_marker: str = text("not slow and not pipeline", help="pytest -m expression for the unit tests")

    def check_paths(self, root: Path, where: str) -> list[str]:
        return _missing(root, where, "lint", list(self.lint)) + _missing(root, where, "tests", [self.tests])


@settings
class HilSettings:
    """`pytest <tests> --rig RIG` on the rig: the suites, the engine under test, extra arguments and a time limit
    (default: 90% of the stage's)."""

    tests: str = text("hil_tests", help="the HIL suites' folder")
    engine_from: str = text("", nonempty=False, help="the stage whose artifacts hold the engine under test, "
                                                      "e.g. convert ('' : the rig's own `engine`)")
    engine_files: list = str_list(["engine.plan", "engine.onnx"],
                                  help="engine file names in that stage's artifacts, the first found is tested")
    pytest_args: list = str_list([], help='extra pytest arguments, e.g. ["-n", "4"]')
    timeout_s: float | None = number(None, gt=0, le=DAY_S, allow_none=True)

    def check_paths(self, root: Path, where: str) -> list[str]:
        return _missing(root, where, "tests", [self.tests])


@settings
class ReportSettings:
    """The merged JUnit and the HTML report."""

    title: str = text("hilci pipeline")
