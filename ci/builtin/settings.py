"""The hilci.yaml sections of the pipeline's own stages (`build`, `hil`, `report`) as typed settings classes.

The model stages type theirs in `hilci.conversion.settings`; `hilci.pipeline.config` reads every section through its class.
"""

from __future__ import annotations

from hilci.util.settings import number, settings, str_list, text

DAY_S = 24 * 3600.0


@settings
class BuildSettings:
    """Wheel, ruff and the unit tests, each with its own time limit."""

    wheel_timeout_s: float = number(900.0, gt=0, le=DAY_S)
    lint_timeout_s: float = number(300.0, gt=0, le=DAY_S)
    test_timeout_s: float = number(900.0, gt=0, le=DAY_S)
    unit_test_marker: str = text("not slow and not pipeline", help="pytest -m expression for the unit tests")


@settings
class HilSettings:
    """`pytest hil_tests` on the rig: extra arguments and a time limit (default: 90% of the stage's)."""

    pytest_args: list = str_list([], help='extra pytest arguments, e.g. ["-n", "4"]')
    timeout_s: float | None = number(None, gt=0, le=DAY_S, allow_none=True)


@settings
class ReportSettings:
    """The merged JUnit and the HTML report."""

    title: str = text("hilci pipeline")
