"""The paper library in Chroma: one collection of chunks, one of papers.

Layout
- `chunks`: id `<paper_id>#<n>`, the chunk text (title first), its embedding,
  metadata `paper_id`, `title`, `published` (YYYYMMDD integer, because Chroma
  compares numbers only), `chunk`, `content_hash`.
- `papers`: one record per paper, the abstract as document, the mean of its
  chunk vectors as embedding (digests cluster on it), every field of the paper
  as metadata, and `content_hash`.

Writes for a batch go chunks first, stale chunks deleted second, paper
records last. A paper record is therefore the commit marker: an interrupted
ingest leaves at most chunks whose `content_hash` no paper record carries;
search ignores those and the next ingest overwrites them (ids are
deterministic, so nothing is duplicated). The generation is bumped before the
paper records are written as well as after, so a write that fails half-way
still invalidates every cache built on the old state.

`reindex` builds `papers__next`/`chunks__next` beside the live collections,
marks `papers__next` complete, and only then swaps (see `finish_swap`): at no
step is the only complete copy of the records deleted, and whatever step an
interruption lands on, the next `Library.open` finishes or discards it.

Every call into Chroma goes through `_guard`, which turns the failures a user
can act on (disk full, the server gone, a damaged store) into one-line
`StoreError`s and lets anything else keep its traceback.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from .errors import EmbedderMismatch, StoreDamaged, StoreError, StoreFull, StoreUnavailable
from .settings import display_url

if TYPE_CHECKING:
    import numpy as np

    from .settings import Settings

CHUNKS = "chunks"
PAPERS = "papers"
WRITE_BATCH = 256  # well under Chroma's SQLite and HTTP request limits
READ_BATCH = 2000
NEXT = "__next"  # the replacement `reindex` builds
OLD = "__old"  # a live collection moved aside while its replacement moves in
COMPLETE = "reindex_complete"  # set on papers__next once every record is in it
LOCK_FILE = "store.lock"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def classify_failure(exc: BaseException, location: str, remote: bool) -> StoreError | None:
    """The user-actionable store failure behind `exc`, or None for a bug.

    Chroma reports a full disk as SQLite's "database or disk is full" (inside
    its own error types) or as an OSError(ENOSPC); a dead server as an httpx
    transport error or a plain ConnectionError.
    """
    httpx = sys.modules.get("httpx")
    for cause in _chain(exc):
        text = str(cause).lower()
        if (isinstance(cause, OSError) and cause.errno == errno.ENOSPC) or (
            "disk is full" in text or "no space left" in text
        ):
            return StoreFull(f"the disk holding the store at {location} is full ({cause})")
        if isinstance(cause, ConnectionError) or (
            httpx is not None and isinstance(cause, httpx.TransportError)
        ):
            return StoreUnavailable(
                f"lost the connection to the Chroma server at {location} "
                f"({type(cause).__name__}: {cause or 'no answer'})"
            )
    return None


def _is_not_found(exc: BaseException) -> bool:
    """Chroma's answer for a collection that does not exist (1.x: NotFoundError)."""
    from chromadb.errors import NotFoundError

    return isinstance(exc, NotFoundError) or (
        isinstance(exc, ValueError) and "does not exist" in str(exc)
    )


def date_to_int(value: date | None) -> int | None:
    return value.year * 10000 + value.month * 100 + value.day if value else None


def int_to_date(value: int | None) -> date | None:
    if not value:
        return None
    return date(value // 10000, value // 100 % 100, value % 100)


@dataclass
class PaperWrite:
    """Everything written for one paper: its record, chunks and their vectors."""

    paper_id: str
    metadata: dict[str, Any]
    abstract: str
    chunks: list[str]
    vectors: np.ndarray


def _chroma_settings():
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


def connect(settings: Settings):
    """A Chroma client: a server when ASSISTANT_CHROMA_URL is set, else embedded."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb

    if settings.chroma_url:
        url = urlparse(
            settings.chroma_url if "//" in settings.chroma_url else f"http://{settings.chroma_url}"
        )
        if not url.hostname:
            raise StoreError(
                f"ASSISTANT_CHROMA_URL={display_url(settings.chroma_url)!r} is not a URL"
            )
        try:
            return chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=_chroma_settings(),
            )
        except Exception as exc:  # the client raises httpx, ValueError or its own types
            # for an unreachable, wrong-version or refusing server: all "cannot reach"
            raise StoreError(
                f"cannot reach the Chroma server at {display_url(settings.chroma_url)}: {exc}"
            ) from None
    path = settings.home / "chroma"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the store directory {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise StoreError(f"the store directory {path} is not writable")
    try:
        return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
    except Exception as exc:  # opening runs migrations and reads SQLite: any failure
        # (corrupt file, newer schema, locked) means this store cannot be opened
        raise StoreError(f"cannot open the store at {path}: {exc}") from None


class Library:
    """The stored papers and chunks, and the embedder they were built with."""

    def __init__(
        self,
        client: Any,
        location: str,
        suffix: str = "",
        lock_path: Path | None = None,
        remote: bool = False,
    ):
        self.client = client
        self.location = location
        self.suffix = suffix  # "__next" while `reindex` builds a replacement
        self.lock_path = lock_path
        self.remote = remote
        self.finished_reindex = False  # set when `open` completed an interrupted swap
        self._chunks = None
        self._papers = None
        self._lock_depth = 0

    @classmethod
    def open(cls, settings: Settings) -> Library:
        """Connect, and finish (or roll back) a reindex interrupted mid-swap."""
        location = str(settings.home / "chroma")
        if settings.chroma_url:
            location = display_url(settings.chroma_url)
        library = cls(
            connect(settings),
            location,
            lock_path=Path(settings.home) / LOCK_FILE,
            remote=bool(settings.chroma_url),
        )
        if library._swap_left_over():
            # Only when no ingest or reindex is running: a reindex mid-swap
            # finishes its own swap, and a reader must not wait for it.
            with library.write_lock(blocking=False) as locked:
                if locked:
                    library.finished_reindex = library.finish_swap()
                    library._drop_unfinished()
        return library

    def _drop_unfinished(self) -> None:
        """Drop a replacement an interrupted reindex left half built. Called
        only under the write lock, so no reindex is building it right now; the
        live collections hold every paper."""
        names = self._names()
        if self._replacement_complete(names):
            return
        for name in (CHUNKS, PAPERS):
            if name + NEXT in names:
                self._drop(name + NEXT)

    # -- failures ----------------------------------------------------------
    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Turn Chroma's failures a user can act on into one-line StoreErrors."""
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:  # classified here; whatever is not a store fault re-raises
            failure = classify_failure(exc, self.location, self.remote)
            if failure is None:
                raise
            raise failure from exc

    # -- writers' lock -----------------------------------------------------
    @contextmanager
    def write_lock(
        self, notify: Callable[[str], None] | None = None, blocking: bool = True
    ) -> Iterator[bool]:
        """One writer per home at a time: ingest and reindex hold this for their
        whole run, so a second one diffs against the first's result instead of
        re-embedding everything, and no generation increment is lost.

        A file lock (flock): released by the kernel when a process dies, so a
        killed ingest never leaves the home locked. Re-entrant per Library.
        With `blocking=False` it yields False at once when another writer
        holds the lock.
        """
        if self.lock_path is None or self._lock_depth:
            self._lock_depth += 1
            try:
                yield True
            finally:
                self._lock_depth -= 1
            return
        import fcntl

        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.lock_path, "a+b")  # noqa: SIM115 - held across the yield
        except OSError as exc:
            raise StoreError(
                f"cannot create the lock file {self.lock_path}: {exc.strerror or exc}"
            ) from None
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not blocking:
                    yield False
                    return
                if notify:
                    notify(f"waiting for another ingest or reindex of {self.location} to finish…")
                fcntl.flock(handle, fcntl.LOCK_EX)
            self._lock_depth = 1
            try:
                yield True
            finally:
                self._lock_depth = 0
                fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()

    # -- collections -------------------------------------------------------
    @contextmanager
    def _reading(self, doing: str) -> Iterator[None]:
        """As `_guard`, and a read fault (Chroma's, SQLite's, the disk's) is damage."""
        try:
            with self._guard(doing):
                yield
        except StoreError:
            raise
        except Exception as exc:  # classified here; what is not a read fault re-raises
            from chromadb.errors import ChromaError

            if isinstance(exc, (ChromaError, sqlite3.Error, OSError)):
                raise self._damaged(exc) from exc
            raise

    def _existing(self, name: str, suffixed: bool = True):
        """The collection, or None when it does not exist (only "does not exist" means absent)."""
        full = name + self.suffix if suffixed else name
        with self._reading(f"open the collection {full}"):
            try:
                return self.client.get_collection(full, embedding_function=None)
            except Exception as exc:  # only "does not exist" is absence; the rest re-raises
                if _is_not_found(exc):
                    return None
                raise

    def _damaged(self, exc: BaseException) -> StoreDamaged:
        if self.remote:
            return StoreDamaged(
                f"the Chroma server at {self.location} cannot read the "
                f"library: {type(exc).__name__}: {exc}"
            )
        return StoreDamaged(
            f"the library at {self.location} cannot be read ({type(exc).__name__}: {exc}); "
            "it may be damaged: move that folder aside and run `assistant ingest` again "
            "to rebuild it"
        )

    def _names(self) -> set[str]:
        with self._reading("list the collections"):
            listed = self.client.list_collections()
        return {c if isinstance(c, str) else c.name for c in listed}

    def _drop(self, name: str) -> None:
        with self._guard(f"delete the collection {name}"):
            try:
                self.client.delete_collection(name)
            except Exception as exc:  # only "already gone" is fine; the rest re-raises
                if not _is_not_found(exc):
                    raise

    def _rename(self, old: str, new: str) -> None:
        with self._guard(f"rename the collection {old}"):
            self.client.get_collection(old, embedding_function=None).modify(name=new)

    def _collection(self, name: str, create_for: tuple[str, int] | None):
        collection = self._existing(name)
        if collection is None and create_for is not None:
            embedder, dim = create_for
            with self._guard("create a collection"):
                collection = self.client.get_or_create_collection(
                    name + self.suffix,
                    embedding_function=None,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={"embedder": embedder, "dim": dim, "generation": 0},
                )
        return collection

    @property
    def exists(self) -> bool:
        return self._existing(PAPERS) is not None

    @property
    def embedder_info(self) -> tuple[str, int] | None:
        papers = self._existing(PAPERS)
        if papers is None:
            return None
        meta = papers.metadata or {}
        return str(meta.get("embedder")), int(meta.get("dim") or 0)

    def check_embedder(self, name: str, dim: int) -> None:
        """Refuse to mix vectors of two embedding models in one library."""
        info = self.embedder_info
        if info is not None and info != (name, dim):
            raise EmbedderMismatch(
                f"the library at {self.location} was indexed with {info[0]} ({info[1]} dims) "
                f"but the current embedder is {name} ({dim} dims); set ASSISTANT_EMBEDDER back, "
                "or run `assistant reindex` to re-embed every stored paper with the current one"
            )

    def papers(self, create_for: tuple[str, int] | None = None):
        if self._papers is None:
            self._papers = self._collection(PAPERS, create_for)
        return self._papers

    def chunks(self, create_for: tuple[str, int] | None = None):
        if self._chunks is None:
            self._chunks = self._collection(CHUNKS, create_for)
        return self._chunks

    @property
    def generation(self) -> int:
        """Bumped after every write; caches built from the store key on it."""
        return self.state()[1]

    def state(self) -> tuple[str | None, int]:
        """(papers collection id, write generation) in one read; (None, 0) for an empty store.
        A cache keys on both: a reindex replaces the collection, every write bumps the number."""
        papers = self._existing(PAPERS)
        if papers is None:
            return None, 0
        return str(papers.id), int((papers.metadata or {}).get("generation", 0))

    def side_collection(self, name: str, create: bool = False):
        """A collection another part keeps in this store (the keyword index's change log):
        never suffixed or swapped by reindex; None when absent and not `create`d."""
        if not create:
            return self._existing(name, suffixed=False)
        with self._guard(f"create the collection {name}"):
            return self.client.get_or_create_collection(name, embedding_function=None)

    def _bump_generation(self) -> None:
        """Read-modify-write under `write_lock` (re-entrant: ingest already holds
        it), re-reading the stored value, so no increment is lost to another
        process."""
        papers = self.papers()
        with self.write_lock(), self._guard("update the library's generation"):
            papers = self.client.get_collection(papers.name, embedding_function=None)
            meta = dict(papers.metadata or {})
            meta["generation"] = int(meta.get("generation", 0)) + 1
            papers.modify(metadata=meta)
        self._papers = papers

    # -- reading -----------------------------------------------------------
    def get_papers(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Stored paper metadata by id (missing ids are absent)."""
        return {pid: meta for pid, meta, _ in self.iter_papers(ids=ids)}

    def paper(self, paper_id: str) -> dict[str, Any] | None:
        """One paper's stored metadata with its whole abstract under "abstract";
        None when it is not stored (or the library is empty)."""
        for _, meta, extra in self.iter_papers(("metadatas", "documents"), ids=[paper_id]):
            return {**meta, "abstract": extra["document"] or ""}
        return None

    def find_by_title_keys(self, keys: Iterable[str]) -> dict[str, str]:
        """title_key -> stored paper id, to unify a paper seen with and without its arXiv id."""
        papers = self.papers()
        if papers is None:
            return {}
        keys = list(keys)
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            with self._guard("read paper records"):
                batch = papers.get(
                    where={"title_key": {"$in": keys[start : start + 500]}}, include=["metadatas"]
                )
            for pid, meta in zip(batch["ids"], batch["metadatas"]):
                found.setdefault(str(meta["title_key"]), pid)
        return found

    def iter_papers(
        self,
        include: tuple[str, ...] = ("metadatas",),
        where: dict | None = None,
        ids: Iterable[str] | None = None,
    ) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
        """Every stored paper, or those of `ids` that are stored, as (id, metadata, extra)
        where extra holds the requested documents/embeddings; read in batches."""
        papers = self.papers()
        if papers is None:
            return
        wanted = None if ids is None else list(ids)
        offset = 0
        while wanted is None or offset < len(wanted):
            page: dict[str, Any] = (
                {"limit": READ_BATCH, "offset": offset}
                if wanted is None
                else {"ids": wanted[offset : offset + READ_BATCH]}
            )
            with self._guard("read paper records"):
                batch = papers.get(include=list(include), where=where, **page)
            if wanted is None and not batch["ids"]:
                return
            for i, pid in enumerate(batch["ids"]):
                extra = {}
                if "documents" in include:
                    extra["document"] = batch["documents"][i]
                if "embeddings" in include:
                    extra["embedding"] = batch["embeddings"][i]
                yield pid, dict(batch["metadatas"][i] or {}), extra
            offset += len(batch["ids"]) if wanted is None else READ_BATCH

    def iter_chunks(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        chunks = self.chunks()
        if chunks is None:
            return
        offset = 0
        while True:
            with self._guard("read chunks"):
                batch = chunks.get(
                    include=["documents", "metadatas"], limit=READ_BATCH, offset=offset
                )
            if not batch["ids"]:
                return
            yield from zip(batch["ids"], batch["documents"], batch["metadatas"])
            offset += len(batch["ids"])

    def counts(self) -> tuple[int, int]:
        papers, chunks = self._existing(PAPERS), self._existing(CHUNKS)
        with self._guard("count the library"):
            return (papers.count() if papers else 0, chunks.count() if chunks else 0)

    # -- writing -----------------------------------------------------------
    def write(
        self,
        writes: list[PaperWrite],
        embedder: tuple[str, int],
        replaces: dict[str, str] | None = None,
    ) -> None:
        """Store a batch of papers (see the module docstring for the order).

        `replaces` maps new paper id -> an old id the paper was stored under
        (its title hash, before its arXiv id was known); the old one is removed.
        """
        if not writes:
            return
        chunks = self.chunks(create_for=embedder)
        papers = self.papers(create_for=embedder)
        ids, docs, metas, vectors = [], [], [], []
        for w in writes:
            for n, text in enumerate(w.chunks):
                ids.append(f"{w.paper_id}#{n}")
                docs.append(text)
                meta = {
                    "paper_id": w.paper_id,
                    "title": w.metadata["title"],
                    "chunk": n,
                    "content_hash": w.metadata["content_hash"],
                }
                if w.metadata.get("published"):
                    meta["published"] = w.metadata["published"]
                metas.append(meta)
            vectors.extend(w.vectors.tolist())
        with self._guard("write chunks"):
            for start in range(0, len(ids), WRITE_BATCH):
                end = start + WRITE_BATCH
                chunks.upsert(
                    ids=ids[start:end],
                    documents=docs[start:end],
                    metadatas=metas[start:end],
                    embeddings=vectors[start:end],
                )
            # Every chunk of these papers that carries none of the new hashes is stale
            # (a hash covers the title, so no paper can carry another's). One call.
            chunks.delete(
                where={
                    "$and": [
                        {"paper_id": {"$in": [w.paper_id for w in writes]}},
                        {"content_hash": {"$nin": [w.metadata["content_hash"] for w in writes]}},
                    ]
                }
            )
            old_ids = [old for new, old in (replaces or {}).items() if old != new]
            if old_ids:
                chunks.delete(where={"paper_id": {"$in": old_ids}})
        import numpy as np

        means = []
        for w in writes:
            mean = w.vectors.mean(axis=0)
            norm = float(np.linalg.norm(mean)) or 1.0
            means.append((mean / norm).tolist())
        # Bumped before as well as after: a failure between the records and the
        # second bump must still invalidate caches built on the old state.
        self._bump_generation()
        with self._guard("write paper records"):
            for start in range(0, len(writes), WRITE_BATCH):
                batch = writes[start : start + WRITE_BATCH]
                papers.upsert(
                    ids=[w.paper_id for w in batch],
                    documents=[w.abstract for w in batch],
                    metadatas=[w.metadata for w in batch],
                    embeddings=means[start : start + WRITE_BATCH],
                )
            if old_ids:
                papers.delete(ids=old_ids)
        self._bump_generation()

    # -- reindex -----------------------------------------------------------
    def replacement(self) -> Library:
        """An empty library beside this one, to be swapped in by `swap_in`.

        A finished replacement left by an interrupted swap is swapped in first
        (`finish_swap`), so this only ever drops an unfinished one, which the
        live collections make redundant.
        """
        self.finish_swap()
        names = self._names()
        for name in (CHUNKS, PAPERS):
            if name + NEXT in names:
                self._drop(name + NEXT)
        return Library(self.client, self.location, suffix=NEXT, lock_path=None, remote=self.remote)

    def swap_in(self, replacement: Library) -> None:
        """Replace this library's collections with the replacement's.

        First the replacement is marked complete (the commit point; its
        generation continues this library's, so no cache keyed on an old
        generation number survives), then `finish_swap` moves it in.
        """
        papers = replacement.papers()
        with self._guard("mark the new index complete"):
            papers = self.client.get_collection(papers.name, embedding_function=None)
            meta = dict(papers.metadata or {})
            meta["generation"] = self.generation + int(meta.get("generation", 0)) + 1
            meta[COMPLETE] = True
            papers.modify(metadata=meta)
        self.finish_swap()

    def _replacement_complete(self, names: set[str]) -> bool:
        if PAPERS + NEXT not in names:
            return False
        with self._guard("read the new index"):
            papers = self.client.get_collection(PAPERS + NEXT, embedding_function=None)
        return bool((papers.metadata or {}).get(COMPLETE))

    def _swap_left_over(self) -> bool:
        return not self.suffix and any(n.endswith((NEXT, OLD)) for n in self._names())

    def finish_swap(self) -> bool:
        """Bring the collections to a whole state after any interrupted swap.

        Idempotent, and safe to interrupt at any step: a live collection is
        only renamed aside (never deleted) while a complete replacement waits,
        and an aside copy is deleted only once a live one exists again.
        Returns True when it moved a complete replacement in.
        """
        if self.suffix:
            return False
        names = self._names()
        if not any(n.endswith((NEXT, OLD)) for n in names):
            return False
        moved = False
        if self._replacement_complete(names):
            for name in (CHUNKS, PAPERS):  # papers last: its marker says "not done yet"
                if name + NEXT not in names:
                    continue  # this one already moved in
                if name in names:
                    if name + OLD in names:
                        self._drop(name + OLD)  # superseded twice over
                    self._rename(name, name + OLD)
                self._rename(name + NEXT, name)
            moved = True
            names = self._names()
        for name in (CHUNKS, PAPERS):
            if name + OLD not in names:
                continue
            if name in names:
                self._drop(name + OLD)
            else:
                self._rename(name + OLD, name)  # the only copy left: put it back
        self._chunks = self._papers = None
        return moved

    def update_metadata(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        """Rewrite paper records whose text (and so vectors) did not change."""
        if not records:
            return
        papers, chunks = self.papers(), self.chunks()
        self._bump_generation()  # before and after, as in `write`
        for start in range(0, len(records), WRITE_BATCH):
            batch = records[start : start + WRITE_BATCH]
            chunk_ids, chunk_metas = [], []
            for pid, meta in batch:
                for n in range(int(meta.get("n_chunks", 0))):
                    chunk_ids.append(f"{pid}#{n}")
                    chunk_meta = {
                        "paper_id": pid,
                        "title": meta["title"],
                        "chunk": n,
                        "content_hash": meta["content_hash"],
                    }
                    if meta.get("published"):
                        chunk_meta["published"] = meta["published"]
                    chunk_metas.append(chunk_meta)
            with self._guard("update paper records"):
                if chunk_ids:
                    chunks.update(ids=chunk_ids, metadatas=chunk_metas)
                papers.update(ids=[pid for pid, _ in batch], metadatas=[m for _, m in batch])
        self._bump_generation()


def encode_list(values: list[str]) -> str:
    """Chroma metadata holds scalars only; lists travel as JSON text."""
    return json.dumps(values, ensure_ascii=False)


def decode_list(value: Any) -> list[str]:
    if not value:
        return []
    try:
        decoded = json.loads(value)
    except (TypeError, ValueError):
        return [str(value)]
    return [str(v) for v in decoded] if isinstance(decoded, list) else [str(decoded)]


def store_size_bytes(settings: Settings) -> int | None:
    if settings.chroma_url:
        return None
    root = Path(settings.home) / "chroma"
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0
