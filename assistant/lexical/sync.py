"""Keeping the keyword index current with the store, which other clients may share.

The index's manifest records the store's papers-collection id and write
generation it reflects. `update`, called by ingest and reindex after writing,
appends an entry to a change log kept in the store itself (collection
`keyword_log`: "generations g0..g1 touched these ids") and brings this
client's index up to date. A client whose index is behind replays the log
entries that cover the gap (fetching only those papers); when the log does not
cover it (an ingest that was killed, a log pruned) it compares every stored
paper's metadata with its own and re-indexes only what differs; when the store
is another one (reindexed), it rebuilds. The last two say so on stderr.

The index lives under ASSISTANT_HOME/cache/keyword-<hash of the library
location>/, with a `lock` file held while one process updates it.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .index import KeywordIndex

if TYPE_CHECKING:
    from ..settings import Settings
    from ..store import Library

LOG_COLLECTION = "keyword_log"
LOG_KEEP = 200  # log entries kept in the store; a client further behind compares metadata
LOG_MAX_IDS = 5000  # an entry naming more ids than this says "compare metadata" instead


def notice(message: str) -> None:
    """Where the index says that it is catching up or rebuilding (stderr; replaceable)."""
    print(message, file=sys.stderr, flush=True)


def index_folder(library: Library, settings: Settings) -> Path:
    import hashlib

    where = hashlib.sha1(library.location.encode()).hexdigest()[:10]
    return Path(settings.home) / "cache" / f"keyword-{where}"


@contextmanager
def _locked(folder: Path):
    """One updater at a time per index folder (a no-op where flock is unavailable)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(folder / "lock", "a+")
    except OSError:
        yield
        return
    try:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except (ImportError, OSError):
            pass
        yield
    finally:
        fh.close()


def _log(library: Library, create: bool = False):
    try:
        return library.side_collection(LOG_COLLECTION, create=create)
    except Exception:  # the change log is an optimisation: without it clients compare metadata
        return None


def _fetch(library: Library, ids: list[str] | None) -> list[tuple[str, dict[str, Any], str]]:
    """The stored (id, metadata, abstract) of those of `ids` that exist (None: all)."""
    return [
        (pid, meta, extra.get("document") or "")
        for pid, meta, extra in library.iter_papers(("metadatas", "documents"), ids=ids)
    ]


def _rebuild(
    index: KeywordIndex, library: Library, store_id: str | None, why: str, quiet: bool = False
) -> None:
    started = time.perf_counter()
    n = 0 if quiet else library.counts()[0]
    if n:
        notice(f"keyword index: rebuilding from {n} stored papers ({why})")
    index.clear()
    index.apply(_fetch(library, None), ())
    index.store_id = store_id
    if n:
        notice(f"keyword index: rebuilt in {time.perf_counter() - started:.1f} s")


def _replay_log(
    index: KeywordIndex,
    library: Library,
    store_id: str,
    generation: int,
    applied: tuple[int, int] | None = None,
    skip: str | None = None,
) -> bool:
    """Apply the logged changes that cover (index.generation, generation]; False if they do not.

    `applied`: a span of generations whose changes are already in the index (the
    caller's own write), `skip` its log entry.
    """
    log = _log(library)
    if index.generation is None:
        return False
    spans: list[tuple[int, int, str | None]] = []
    if log is not None:
        got = log.get(
            where={"$and": [{"store": store_id}, {"to": {"$gt": index.generation}}]},
            include=["metadatas"],
        )
        spans = [
            (int(m["from"]), int(m["to"]), m.get("ids"))
            for eid, m in zip(got["ids"], got["metadatas"])
            if m and eid != skip
        ]
    if applied is not None:
        spans.append((applied[0], applied[1], "[]"))
    reached = index.generation
    ids: set[str] = set()
    for start, end, logged in sorted(spans):
        if start > reached:
            return False  # a gap: some write was not logged
        if not logged:
            return False  # too many ids to log: compare instead
        reached = max(reached, end)
        ids.update(json.loads(logged))
    if reached < generation:
        return False
    if ids:
        found = _fetch(library, sorted(ids))
        index.apply(found, ids - {pid for pid, _, _ in found})
    return True


def _compare(index: KeywordIndex, library: Library) -> int:
    """Re-index every paper whose stored metadata differs from the index's; returns how many."""
    stored = {pid: meta for pid, meta, _ in library.iter_papers()}
    changed = [pid for pid, meta in stored.items() if index.papers.get(pid) != meta]
    deleted = [pid for pid in index.papers if pid not in stored]
    if changed or deleted:
        index.apply(_fetch(library, changed), deleted)
    return len(changed) + len(deleted)


def catch_up(index: KeywordIndex, library: Library, quiet: bool = False) -> None:
    """Bring `index` to the store's current state, as cheaply as the store allows."""
    store_id, generation = library.state()
    if index.store_id == store_id and index.generation == generation:
        return
    if index.folder is not None:
        with _locked(index.folder):
            index.sync_from_disk()  # another process may have done the work
            store_id, generation = library.state()
            if index.store_id == store_id and index.generation == generation:
                return
            _bring_current(index, library, store_id, generation, quiet)
            try:
                index.save()
            except OSError:
                pass  # a read-only home still searches; it catches up again next time
    else:
        _bring_current(index, library, store_id, generation, quiet)


def _bring_current(
    index: KeywordIndex,
    library: Library,
    store_id: str | None,
    generation: int,
    quiet: bool = False,
) -> None:
    if store_id is None:
        index.clear()
    elif index.store_id != store_id or not index.segments and index.generation is None:
        _rebuild(
            index,
            library,
            store_id,
            "first use" if index.store_id is None else "the library was re-indexed",
            quiet,
        )
    elif not _replay_log(index, library, store_id, generation):
        started = time.perf_counter()
        notice(
            f"keyword index: behind the library (generation {index.generation} < "
            f"{generation}) and the change log does not name every change; "
            "comparing every stored paper"
        )
        n = _compare(index, library)
        notice(f"keyword index: {n} papers re-indexed in {time.perf_counter() - started:.1f} s")
    index.store_id, index.generation = store_id, generation


def load(library: Library, settings: Settings, index: KeywordIndex | None = None) -> KeywordIndex:
    """The keyword index of `library`, current with the store (reusing `index`'s loaded parts)."""
    if index is None:
        index = KeywordIndex(index_folder(library, settings))
        index.sync_from_disk()
    catch_up(index, library)
    return index


def update(
    library: Library,
    settings: Settings,
    changed_ids: Iterable[str] | None,
    deleted_ids: Iterable[str] = (),
    since_generation: int | None = None,
) -> None:
    """Record what a write changed and bring this client's index up to date.

    Ingest and reindex call this after writing. `changed_ids` are papers written
    (added, re-embedded or relabelled), `deleted_ids` papers removed,
    `since_generation` the store's generation before the writes began; with
    `changed_ids=None` (reindex) the index is rebuilt from the store. Whatever
    the store holds for those ids is what gets indexed, so an interrupted write
    is indexed as far as it went.
    """
    store_id, generation = library.state()
    ids = sorted(set(changed_ids or ()) | set(deleted_ids))
    entry_id = None
    if (
        store_id is not None
        and changed_ids is not None
        and since_generation is not None
        and (ids or generation != since_generation)
    ):
        log = _log(library, create=True)
        if log is not None:
            try:
                entry_id = uuid.uuid4().hex
                log.add(
                    ids=[entry_id],
                    embeddings=[[1.0]],
                    metadatas=[
                        {
                            "store": store_id,
                            "from": int(since_generation),
                            "to": generation,
                            "ids": json.dumps(ids) if len(ids) <= LOG_MAX_IDS else "",
                            "at": time.time(),
                        }
                    ],
                )
                _prune_log(log)
            except Exception:  # noqa: BLE001 - see the comment on the next line
                pass  # the log is an optimisation: clients fall back to comparing metadata
    folder = index_folder(library, settings)
    index = KeywordIndex(folder)
    with _locked(folder):
        index.sync_from_disk()
        store_id, generation = library.state()
        if changed_ids is None:
            _rebuild(index, library, store_id, "after reindex", quiet=True)
        elif (
            store_id is not None
            and index.store_id == store_id
            and since_generation is not None
            and index.generation == since_generation
        ):
            # Current when these writes began: index what they wrote, then what others
            # logged meanwhile (a compare only if something is not logged).
            found = _fetch(library, ids)
            index.apply(found, set(ids) - {pid for pid, _, _ in found})
            if not _replay_log(
                index,
                library,
                store_id,
                generation,
                applied=(since_generation, generation),
                skip=entry_id,
            ):
                _bring_current(index, library, store_id, generation)
        elif index.store_id != store_id or index.generation != generation:
            _bring_current(
                index, library, store_id, generation, quiet=not since_generation
            )  # an empty store: the first build
        index.store_id, index.generation = store_id, generation
        try:
            index.save()
        except OSError:
            pass  # a read-only home still searches; it catches up again next time


def _prune_log(log) -> None:
    if log.count() <= LOG_KEEP:
        return
    got = log.get(include=["metadatas"])
    order = sorted(zip(got["ids"], got["metadatas"]), key=lambda x: float(x[1].get("at", 0)))
    log.delete(ids=[i for i, _ in order[: len(order) - LOG_KEEP]])
