"""The import rules of DESIGN.md, as import-linter contracts (pyproject.toml [tool.importlinter]) run by pytest.

- layers: each folder of hilci imports only the layers below it (the CLI and engines on top, errors at the bottom);
- `hilci.hil` runs on a Jetson with the core install: it imports none of torch, kubernetes, jenkins, `conversion`;
- stage bodies receive their pipeline (StageContext): they import neither `hilci.example` nor the CLI;
- `hilci.conversion.engines` runs with JetPack's builds: it imports neither torch nor modelopt;
- and no import circle anywhere, inside a folder either (grimp's graph, the one import-linter reads).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
# Imports known to break a contract while they are being removed (none now). The test fails on a stale entry.
PENDING: set[str] = set()


def test_import_contracts_hold():
    assert LINT_IMPORTS.exists(), "import-linter is missing: pip install 'hilci[dev]'"
    proc = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert "Contracts:" in out, out
    broken = set(re.findall(r"^-\s+(\S+ -> \S+)", out, flags=re.M))
    assert broken <= PENDING, f"imports that break a contract:\n{out}"
    assert PENDING <= broken, f"these imports are gone: remove them from PENDING: {PENDING - broken}"
    assert (proc.returncode == 0) == (not broken), out


def test_a_forbidden_import_is_caught(tmp_path):
    """The contracts bite: a stage body importing the definition breaks a forbidden contract, and a low layer
    importing a high one breaks a layers contract."""
    pkg = tmp_path / "demo"
    (pkg / "demo_ci" / "builtin").mkdir(parents=True)
    for name in ("__init__.py", "builtin/__init__.py", "errors.py"):
        (pkg / "demo_ci" / name).write_text("")
    (pkg / "demo_ci" / "example.py").write_text("PIPELINE = None\n")
    (pkg / "demo_ci" / "builtin" / "stages.py").write_text("from demo_ci.example import PIPELINE\n")
    (pkg / "demo_ci" / "errors.py").write_text("import demo_ci.builtin.stages\n")
    (pkg / ".importlinter").write_text(
        "[importlinter]\nroot_package = demo_ci\n\n"
        "[importlinter:contract:bodies]\nname = bodies\ntype = forbidden\n"
        "source_modules = demo_ci.builtin.stages\nforbidden_modules = demo_ci.example\n\n"
        "[importlinter:contract:layers]\nname = layers\ntype = layers\nlayers =\n    demo_ci.builtin\n"
        "    demo_ci.errors\n")
    proc = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=pkg, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(pkg), "PATH": str(LINT_IMPORTS.parent)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "demo_ci.builtin.stages -> demo_ci.example" in proc.stdout
    assert "demo_ci.errors -> demo_ci.builtin.stages" in proc.stdout


def import_cycles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module: every import circle, each once."""
    modules = sorted(graph.modules)
    edges = {m: sorted(i for i in graph.find_modules_directly_imported_by(m) if i in graph.modules) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []
    for root in modules:  # Tarjan's algorithm, iterative (no recursion limit to meet)
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
            if i < len(edges[node]):
                work.append((node, i + 1))
                nxt = edges[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    cycles.append(sorted(comp))
    return cycles


def test_no_module_imports_itself_through_others():
    import grimp

    cycles = import_cycles(grimp.build_graph("hilci", cache_dir=None))
    assert cycles == [], "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_circle():
    class Graph:
        modules = {"a", "b", "c", "d"}
        imports = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

        def find_modules_directly_imported_by(self, m):
            return self.imports.get(m, set())

    assert import_cycles(Graph()) == [["a", "b", "c"]]


def test_only_public_pytest_apis():
    """pytest's private `_pytest` package changes between releases without notice: the library and the HIL
    suites use `pytest` only (public hooks, fixtures and `pytest.*` names)."""
    private = re.compile(r"^\s*(from\s+_pytest[\s.]|import\s+_pytest\b)", flags=re.M)
    found = [str(p.relative_to(ROOT)) for folder in ("ci", "conversion", "hil_tests")
             for p in sorted((ROOT / folder).rglob("*.py")) if private.search(p.read_text())]
    assert found == [], f"private pytest imports in {found}"
