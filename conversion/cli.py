"""`hilci trace ARTIFACT`: print an artifact's lineage back to commit and data (no torch imported)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("trace", help="print an artifact's lineage (manifests) back to commit and data")
    parser.add_argument("artifact", help="an artifact with a manifest beside it, e.g. artifacts/convert/engine.onnx")
    parser.add_argument("--root", default=None, help="repository root the manifests' paths are relative to "
                                                     "(default: $HILCI_ROOT or the current directory)")
    parser.add_argument("--json", action="store_true", help="print the lineage tree as JSON")
    parser.set_defaults(func=trace_command)


def trace_command(args) -> int:
    """Exit 0 when every artifact and input matches its manifest, 1 when something changed or is missing."""
    from hilci.conversion import manifest, trace
    from hilci.errors import UsageError

    root = Path(args.root or os.environ.get("HILCI_ROOT") or Path.cwd())
    artifact = Path(args.artifact)
    if not artifact.is_absolute() and not artifact.exists() and (root / artifact).exists():
        artifact = root / artifact
    if not artifact.exists() and not manifest.manifest_path(artifact).exists():
        raise UsageError(f"{args.artifact}: no such artifact")
    try:
        tree = trace.lineage(artifact, root)
    except manifest.ManifestError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(trace.as_dict(tree), indent=1) if args.json else trace.render(tree))
    bad = trace.problems(tree)
    for line in bad:
        print(f"hilci trace: {line}")
    return 1 if bad else 0
