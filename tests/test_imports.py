"""The import rules of DESIGN.md, as import-linter contracts (pyproject.toml [tool.importlinter]) run by pytest.

- `ci.hil` runs on a Jetson with the core install: it imports none of torch, kubernetes, jenkins, `conversion`;
- stage bodies receive their pipeline (StageContext): they import neither `ci.definition` nor the CLI;
- `conversion.engines` runs with JetPack's builds: it imports neither torch nor modelopt.
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
    """The contracts bite: a stage body importing the definition breaks the second contract."""
    pkg = tmp_path / "demo"
    (pkg / "ci").mkdir(parents=True)
    (pkg / "ci" / "__init__.py").write_text("")
    (pkg / "ci" / "definition.py").write_text("PIPELINE = None\n")
    (pkg / "ci" / "stages.py").write_text("from ci.definition import PIPELINE\n")
    (pkg / ".importlinter").write_text(
        "[importlinter]\nroot_package = ci\n\n[importlinter:contract:bodies]\nname = bodies\ntype = forbidden\n"
        "source_modules = ci.stages\nforbidden_modules = ci.definition\n")
    proc = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=pkg, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(pkg), "PATH": str(LINT_IMPORTS.parent)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ci.stages -> ci.definition" in proc.stdout
