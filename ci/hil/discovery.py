"""Finding device kinds: every installed package's through the `hilci.kinds` entry-point group (hilci's own
four among them), then the project's own modules named under `kinds:` in hilci.yaml.

An entry point names a module (importing it registers its kinds) or a callable (called with no arguments; it
registers its kinds, or returns a DeviceKind or a list of them). Every command that reads a rig loads them
through here first (`hilci doctor`, `hilci run`'s checks, `hilci emulate`, the pytest plugin), so a kind
shipped as a package is known everywhere without an import of the user's. A kind that fails to load is one
line naming where it came from (UsageError).
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata
from pathlib import Path

from hilci.errors import UsageError
from hilci.hil import registry
from hilci.hil.registry import DeviceKind, KindError

GROUP = "hilci.kinds"
BUILTIN = "hilci.hil.kinds"  # hilci's own kinds: its entry point, and the fallback of a checkout never installed

_loaded: set[str] = set()  # the sources loaded in this process ("entry points", project roots)


def load(root: Path | None = None) -> dict[str, DeviceKind]:
    """Every kind: the entry points' once per process, and the kinds of the project at `root` (found from the
    working directory when not given)."""
    if "entry points" not in _loaded:
        _loaded.add("entry points")
        for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: (e.value != BUILTIN, e.name)):
            _load(ep.value, _describe(ep), ep.load)
        if BUILTIN not in sys.modules:
            _load(BUILTIN, f"module {BUILTIN}", lambda: importlib.import_module(BUILTIN))
    project = root or _project_root()
    if project is not None and str(project) not in _loaded:
        _loaded.add(str(project))
        from hilci.pipeline.project import read_settings

        settings = read_settings(project)
        if settings.kinds and str(project) not in sys.path:
            sys.path.insert(0, str(project))
        for name in settings.kinds:
            _load(name, f"{settings.source}: kinds: {name}", lambda n=name: importlib.import_module(n))
    return registry.kinds()


def kinds() -> dict[str, DeviceKind]:
    return load()


def device_kind(name: str) -> DeviceKind | None:
    return load().get(name)


def _load(ref: str, source: str, loader) -> None:
    try:
        obj = loader()
        if callable(obj) and not isinstance(obj, type):
            obj = obj()
        found = obj if isinstance(obj, (list, tuple)) else [obj]
        for kind in found:
            if isinstance(kind, DeviceKind):
                registry.register(kind)
    except KindError as exc:
        raise UsageError(f"{source}: {exc}") from None
    except Exception as exc:  # a plugin may fail in any way: one line, naming where it came from
        raise UsageError(f"{source}: cannot load device kinds ({type(exc).__name__}: {exc})"[:400]) from None


def _describe(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    package = f" of package {dist.name} {dist.version}" if dist is not None else ""
    return f"entry point '{ep.name} = {ep.value}'{package} (group {GROUP})"


_roots: dict[str, Path | None] = {}  # working directory -> its project's root (or None outside a project)


def _project_root() -> Path | None:
    from hilci.pipeline.project import find_root

    cwd = str(Path.cwd())
    if cwd not in _roots:
        try:
            _roots[cwd] = find_root()
        except UsageError:
            _roots[cwd] = None
    return _roots[cwd]
