"""gc evicts untrusted builds' namespaces (`branches/*`) whole: idle ones by age, then the least recently active
over a size budget; the shared layout protected builds read is never touched by it (#16)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hilci.store.backend import Store
from hilci.store.gc import collect
from hilci.store.trust import Trust

DAY = 86400.0


def _space(store: Store, root: Path, branch: str, payload: bytes, age_days: float) -> str:
    """A branch's namespace as an untrusted build leaves it: a blob, an entry naming it, a history record."""
    ns = Trust(branch).write_ns
    src = root / f"{abs(hash(branch))}.bin"
    src.write_bytes(payload)
    digest = store.put_blob(src, ns)
    store.write_bytes(f"{ns}entries/gen/{'a' * 64}.json", b'{"files": {"x": "%s"}}' % digest.encode())
    store.write_bytes(f"{ns}history/{branch}/local/1.json", b"{}")
    when = time.time() - age_days * DAY
    for dirpath, _dirs, files in os.walk(root / "store" / ns):
        for name in files:
            os.utime(os.path.join(dirpath, name), (when, when))
    return ns


def _files(root: Path, ns: str) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / "store" / ns).rglob("*") if p.is_file())


def test_an_idle_branch_namespace_goes_whole_and_the_shared_layout_stays(tmp_path: Path):
    store = Store((tmp_path / "store").as_uri())
    old = _space(store, tmp_path, "feature/old", b"old branch", age_days=20)
    new = _space(store, tmp_path, "feature/new", b"new branch", age_days=1)
    store.write_bytes(f"entries/gen/{'b' * 64}.json", b"{}")  # main's, young: kept by the entry rules
    report = collect(store, keep_days=30, max_gb=10, protect=("main",))  # the defaults: 14 days, 10 GB
    assert report.evicted_namespaces == [old]
    assert _files(tmp_path, old) == [] and len(_files(tmp_path, new)) == 3
    assert store.exists(f"entries/gen/{'b' * 64}.json")
    assert "evicted 1 stale branch namespace(s)" in report.text("store")
    store.close()


def test_over_the_budget_the_least_recently_active_namespaces_go_first(tmp_path: Path):
    store = Store((tmp_path / "store").as_uri())
    spaces = [_space(store, tmp_path, f"pr-{n}", bytes([n]) * 1000, age_days=n) for n in (3, 2, 1)]
    report = collect(store, keep_days=30, max_gb=10, protect=("main",), branch_max_gb=1.5e-6, dry_run=True)
    assert report.evicted_namespaces == spaces[:2]  # pr-3 (idle 3 days), then pr-2: pr-1 (~1.1 kB) fits 1.5 kB
    assert all(_files(tmp_path, ns) for ns in spaces)  # a dry run deletes nothing
    collect(store, keep_days=30, max_gb=10, protect=("main",), branch_max_gb=1.5e-6)
    assert [bool(_files(tmp_path, ns)) for ns in spaces] == [False, False, True]
    store.close()
