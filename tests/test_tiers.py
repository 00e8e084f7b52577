"""The test tiers: the fast tier (`make test-fast`, the pipeline's build stage) is every test without a mark
saying it needs an emulator, a server, a browser or a pipeline run (or is slow); `make test-rest` runs the others.
The Makefile and hilci.yaml name the same expression, and a test that starts one of those things carries its
mark, so the fast tier stays fast as tests are added."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TIER_MARKS = ("slow", "pipeline", "emulator", "server", "browser")
# what a test's own code does that puts it outside the fast tier
NEEDS = {
    "pipeline": re.compile(r'hilci\([^)\n]*"run"|\brun_stage\(|\bLocalRunner\('),
    "emulator": re.compile(r"emulators\.process|make_hold_project\(|\bstart\(load_rig|wire_emulated_rig\("),
    "server": re.compile(r"\bseaweed\.|_standin\b|\bkmock\b"),
    "browser": re.compile(r"\bchromium\b"),
}


def fast_tier_in_makefile() -> str:
    return re.search(r"^FAST_TIER := (.+)$", (ROOT / "Makefile").read_text(), flags=re.M).group(1).strip()


def test_the_build_stage_runs_the_fast_tier_the_makefile_names():
    fast = fast_tier_in_makefile()
    assert fast == "not (" + " or ".join(TIER_MARKS) + ")"
    assert yaml.safe_load((ROOT / "hilci.yaml").read_text())["build"]["unit_test_marker"] == fast
    text = (ROOT / "pyproject.toml").read_text()
    for mark in (*TIER_MARKS, "smoke"):
        assert re.search(rf'^\s+"{mark}: ', text, flags=re.M), f"marker {mark} is not registered in pyproject.toml"


def _marks(decorators: list[ast.expr]) -> set[str]:
    found = set()
    for node in decorators:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Attribute) and sub.value.attr == "mark":
                found.add(sub.attr)
    return found


def _needs(code: str) -> set[str]:
    return {mark for mark, pattern in NEEDS.items() if pattern.search(code)}


def unmarked_needs(source: str) -> list[tuple[str, str]]:
    """(test name, mark) for each test whose own code needs `mark` but that does not carry it."""
    tree = ast.parse(source)
    module = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets):
            module |= _marks([node.value])
    missing = []
    # the module's own helpers and fixtures, and what they start, through the helpers they call in turn
    helpers = {node.name: ast.get_source_segment(source, node) or "" for node in tree.body
               if isinstance(node, ast.FunctionDef) and not node.name.startswith("test_")}
    fixtures = {name: _needs(code) for name, code in helpers.items()}
    for _ in helpers:
        for name, code in helpers.items():
            for other in helpers:
                if other != name and re.search(rf"\b{other}\(", code):
                    fixtures[name] |= fixtures[other]

    def visit(body, inherited: set[str]) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                visit(node.body, inherited | _marks(node.decorator_list))
            elif isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                marks = inherited | _marks(node.decorator_list)
                needs = _needs(ast.get_source_segment(source, node) or "")
                for arg in node.args.args:  # what the module's own fixtures it takes start
                    needs |= fixtures.get(arg.arg, set())
                code = ast.get_source_segment(source, node) or ""
                for name in fixtures:  # and the helpers it calls
                    if re.search(rf"\b{name}\(", code):
                        needs |= fixtures[name]
                missing.extend((node.name, mark) for mark in sorted(needs - marks))

    visit(tree.body, module)
    return missing


def test_a_test_that_starts_a_pipeline_emulator_server_or_browser_carries_its_mark():
    missing = [f"{path.name}::{name} needs @pytest.mark.{mark}" for path in sorted((ROOT / "tests").glob("test_*.py"))
               if path.name != "test_tiers.py" for name, mark in unmarked_needs(path.read_text())]
    assert missing == [], "\n".join(missing)


def test_the_check_sees_an_unmarked_run_and_accepts_a_marked_one():
    unmarked = 'def test_x(project):\n    proc = hilci(project, "run")\n'
    assert unmarked_needs(unmarked) == [("test_x", "pipeline")]
    marked = "import pytest\npytestmark = [pytest.mark.pipeline]\n" + unmarked
    assert unmarked_needs(marked) == []
    in_class = '@pytest.mark.server\nclass TestS:\n    def test_y(self):\n        seaweed.start()\n'
    assert unmarked_needs(in_class) == []
    by_fixture = '@pytest.fixture\ndef rig(tmp_path):\n    return wire_emulated_rig(tmp_path)\n\n' \
                 'def test_z(rig):\n    pass\n'
    assert unmarked_needs(by_fixture) == [("test_z", "emulator")]
