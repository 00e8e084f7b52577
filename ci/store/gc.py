"""`hilci store gc`: evict old entries and engines, then the blobs nothing points at.

Never evicted: an entry that the last green run of a protected branch used (the cache keys of the newest
passed or cached record per stage and board on that branch), and blobs younger than `BLOB_GRACE_S` (a writer
may be uploading an entry's blobs right now, its record not yet written; a writer that reuses a blob touches
it, so a blob just chosen for reuse is young again). Also removed: `.tmp-*` files and unfinished multipart
uploads that killed writers left, older than the same grace period.

Untrusted builds' namespaces (`branches/<branch>/`, hilci.store.trust) are evicted whole: one whose newest file
is older than `branch_days` (a branch nobody built since: merged, abandoned), then, least recently active first,
until all namespaces fit `branch_max_gb`. Protected builds never read them, so nothing protected can depend on one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from hilci.store import history
from hilci.store.backend import Store
from hilci.store.trust import NAMESPACES

BLOB_GRACE_S = 3600
DAY_S = 86400
BRANCH_DAYS = 14.0
BRANCH_MAX_GB = 10.0


@dataclass
class GcReport:
    kept_entries: int = 0
    evicted_entries: list[str] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)
    deleted_blobs: int = 0
    partial: int = 0  # .tmp-* files and unfinished multipart uploads of killed writers
    freed_bytes: int = 0
    total_bytes: int = 0
    evicted_namespaces: list[str] = field(default_factory=list)  # branches/<branch>/ of untrusted builds
    namespace_bytes: int = 0  # freed with them
    kept_namespaces: int = 0

    def text(self, display: str) -> str:
        return (f"{display}: evicted {len(self.evicted_entries)} entries, kept {self.kept_entries} "
                f"({len(self.protected)} protected by the last green run of a protected branch); deleted "
                f"{self.deleted_blobs} blobs, freed {self.freed_bytes / 1e6:.1f} MB; removed {self.partial} "
                f"partial upload(s) of killed writers; "
                f"{self.total_bytes / 1e6:.1f} MB left; evicted {len(self.evicted_namespaces)} stale branch "
                f"namespace(s) ({self.namespace_bytes / 1e6:.1f} MB), kept {self.kept_namespaces}")


def protected_keys(store: Store, branches: tuple[str, ...]) -> set[str]:
    """Cache keys used by the newest green record of each stage and board on each protected branch."""
    keys: set[str] = set()
    for branch in branches:
        for board in history.boards(store, branch):  # the newest green record per stage: a few reads each
            found = history.recent(store, branch, board, last=1, keep=lambda r: r.get("status") in
                                   ("passed", "cached") and bool(r.get("cache_key")))
            keys.update(r["cache_key"] for r in found.records)
    return keys


def collect_namespaces(store: Store, report: GcReport, *, now: float, branch_days: float, branch_max_gb: float,
                       dry_run: bool) -> None:
    """Evict untrusted branches' namespaces whole: stale ones, then the least recently active over the budget."""
    spaces: dict[str, list] = {}
    for item in store.list(NAMESPACES):
        parts = item.rel.split("/")
        if len(parts) > 2 and parts[0] == NAMESPACES:
            spaces.setdefault(parts[1], []).append(item)
    newest = {ns: max(i.mtime for i in items) for ns, items in spaces.items()}
    size = {ns: sum(i.size for i in items) for ns, items in spaces.items()}
    gone = [ns for ns in spaces if now - newest[ns] > branch_days * DAY_S]
    left = sorted((ns for ns in spaces if ns not in gone), key=lambda ns: newest[ns])
    total = sum(size[ns] for ns in left)
    while left and total > branch_max_gb * 1e9:
        ns = left.pop(0)
        gone.append(ns)
        total -= size[ns]
    for ns in sorted(gone, key=lambda ns: newest[ns]):
        report.evicted_namespaces.append(f"{NAMESPACES}/{ns}/")
        report.namespace_bytes += size[ns]
        if not dry_run:  # records first (entries, engines, history), blobs last: a reader never finds a record
            for item in sorted(spaces[ns], key=lambda i: "/blobs/" in i.rel):  # whose blobs went first
                store.delete(item.rel)
    report.kept_namespaces = len(left)


def collect(store: Store, *, keep_days: float, max_gb: float, protect: tuple[str, ...],
            now: float | None = None, dry_run: bool = False, branch_days: float = BRANCH_DAYS,
            branch_max_gb: float = BRANCH_MAX_GB) -> GcReport:
    now = time.time() if now is None else now
    report = GcReport()
    collect_namespaces(store, report, now=now, branch_days=branch_days, branch_max_gb=branch_max_gb,
                       dry_run=dry_run)
    keep = protected_keys(store, protect)
    records = [item for prefix in ("entries", "engines") for item in store.list(prefix)
               if item.rel.endswith(".json")]
    blobs = {item.rel.rsplit("/", 1)[-1]: item for item in store.list("blobs")}
    refs: dict[str, set[str]] = {}
    created: dict[str, float] = {}
    for item in records:
        try:
            data = json.loads(store.read_bytes(item.rel) or b"{}")
        except ValueError:
            data = {}
        digests = set()
        when = data.get("created") if isinstance(data, dict) else None
        created[item.rel] = float(when) if isinstance(when, (int, float)) and not isinstance(when, bool) \
            else item.mtime
        if isinstance(data, dict):
            files = data.get("files")
            digests |= set(files.values()) if isinstance(files, dict) else set()
            digests |= {data.get(k) for k in ("junit", "log") if isinstance(data.get(k), str)}
        refs[item.rel] = {d for d in digests if isinstance(d, str)}

    def key_of(rel: str) -> str:
        return rel.rsplit("/", 1)[-1][: -len(".json")]

    alive = []
    for item in sorted(records, key=lambda i: created[i.rel]):
        if key_of(item.rel) in keep:
            report.protected.append(item.rel)
            alive.append(item)
        elif now - created[item.rel] > keep_days * DAY_S:
            report.evicted_entries.append(item.rel)
        else:
            alive.append(item)

    # oldest first until the blobs still referenced fit the budget: reference counts, one pass (not a union of
    # every live entry's blobs per eviction, which is quadratic in the number of entries)
    count: dict[str, int] = {}
    for item in alive:
        for d in refs[item.rel]:
            count[d] = count.get(d, 0) + 1
    size = sum(blobs[d].size for d in count if d in blobs)
    budget = max_gb * 1e9
    gone: set[str] = set()
    for victim in [i for i in alive if key_of(i.rel) not in keep]:
        if size <= budget:
            break
        gone.add(victim.rel)
        report.evicted_entries.append(victim.rel)
        for d in refs[victim.rel]:
            count[d] -= 1
            if count[d] == 0 and d in blobs:
                size -= blobs[d].size
    alive = [i for i in alive if i.rel not in gone]
    report.kept_entries = len(alive)
    used = set().union(*(refs[i.rel] for i in alive)) if alive else set()
    if not dry_run:  # records first: a reader must never find a record whose blobs are gone
        for rel in report.evicted_entries:
            store.delete(rel)
    for digest, item in blobs.items():
        if digest not in used and now - item.mtime > BLOB_GRACE_S:
            report.deleted_blobs += 1
            report.freed_bytes += item.size
            if not dry_run:
                store.delete(item.rel)
    report.total_bytes = sum(i.size for d, i in blobs.items() if d in used)
    report.partial = store.clean_partial(now - BLOB_GRACE_S, dry_run)
    return report
