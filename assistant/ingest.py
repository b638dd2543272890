"""Ingest: read files, merge duplicates, store only what changed.

Every file is read before anything is written, so the same paper in several
files (or several runs) becomes one paper with the union of what the files
know. The diff against the store decides what is embedded: unchanged input
writes nothing, a changed abstract rewrites that paper's chunks.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import StoreError, UsageError
from .records import Paper, RecordError
from .safe_text import safe_line, safe_text, safe_url

if TYPE_CHECKING:
    from .embed import Embedder
    from .settings import Settings
    from .store import Library

EMBED_BATCH_PAPERS = 32


def bundled_corpus() -> Path:
    """The sample corpus shipped inside the package (a byte-for-byte copy)."""
    return Path(__file__).parent / "data" / "hf-daily-papers"


@dataclass
class FileReport:
    source: str
    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    failed: int = 0
    warnings: int = 0
    not_stored: int = 0


@dataclass
class IngestReport:
    files: list[FileReport] = field(default_factory=list)
    failures: list[RecordError] = field(default_factory=list)
    # Stored papers the user should look at: an undated paper, a truncated abstract.
    warnings: list[RecordError] = field(default_factory=list)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    total_papers: int = 0
    total_chunks: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    # Papers this run meant to write but did not (it was interrupted first).
    not_stored: int = 0

    @property
    def exit_code(self) -> int:
        return 1 if self.failures or self.interrupted else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "total_papers": self.total_papers,
            "total_chunks": self.total_chunks,
            "failed": [f.to_dict() for f in self.failures],
            "warnings": [w.to_dict() for w in self.warnings],
            "not_stored": self.not_stored,
            "files": [vars(f) for f in self.files],
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
        }


def _notes(path: Path) -> bool:
    """A folder's own notes (README, Markdown): data folders carry them beside the data,
    and reading them as papers would only fail. Named on the command line, they are read."""
    return path.name.lower().startswith("readme") or path.suffix.lower() == ".md"


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files to read: folders are walked (hidden files and notes skipped), order is stable."""
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        if path.is_dir():
            files.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and not _notes(p)
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            files.append(path)
    return files


# -- what a record may hold ---------------------------------------------------


def _make_safe(result: Any) -> None:
    """Every text field of what a file yielded, safe to store and print (see
    `safe_text`): a lone surrogate cannot be encoded, an ESC drives the terminal."""
    for paper in result.papers:
        paper.title = safe_line(paper.title)
        paper.abstract = safe_text(paper.abstract)
        paper.source = safe_line(paper.source)
        paper.authors = [safe_line(a) for a in paper.authors]
        if paper.organisation:
            paper.organisation = safe_line(paper.organisation)
        if paper.arxiv_id:
            paper.arxiv_id = safe_line(paper.arxiv_id)
        paper.url = safe_url(paper.url)
    for error in (*result.errors, *result.warnings):
        error.source = safe_line(error.source)
        error.reason = safe_line(error.reason)
        error.args = (f"{error.source}:{error.line or 0}: {error.reason}",)


# -- merging ----------------------------------------------------------------

_FILLABLE = (
    "arxiv_id",
    "url",
    "author_count",
    "organisation",
    "published",
    "upvotes",
    "primary_class",
)


def _merge_into(base: Paper, other: Paper) -> None:
    """Fill what `base` lacks from another sighting of the same paper."""
    for name in _FILLABLE:
        if getattr(base, name) in (None, "") and getattr(other, name) not in (None, ""):
            setattr(base, name, getattr(other, name))
            if name == "published":
                base.year_inferred = other.year_inferred
    if not base.authors and other.authors:
        base.authors = list(other.authors)
    if base.published and other.published and base.year_inferred and not other.year_inferred:
        base.published, base.year_inferred = other.published, False


@dataclass
class Merged:
    paper: Paper
    sightings: list[Paper]
    known_sources: list[str] = field(default_factory=list)

    @property
    def sources(self) -> list[str]:
        """Where the paper was seen, earlier runs first."""
        seen = [f"{p.source}:{p.line}" for p in self.sightings]
        return list(dict.fromkeys(self.known_sources + seen))


def merge_records(papers: list[Paper]) -> dict[str, Merged]:
    """One entry per paper. Records agree on a paper by arXiv id, or by
    normalised title when one of them lacks the id."""
    by_key: dict[str, Merged] = {}
    title_to_key: dict[str, str] = {}
    for paper in papers:
        key = paper.arxiv_id or title_to_key.get(paper.title_id) or paper.title_id
        if paper.arxiv_id and paper.title_id in by_key and paper.title_id not in title_to_key:
            # A title-only sighting came first: re-key it under the arXiv id.
            earlier = by_key.pop(paper.title_id)
            by_key[paper.arxiv_id] = earlier
        title_to_key.setdefault(paper.title_id, key)
        if key in by_key:
            merged = by_key[key]
            merged.sightings.append(paper)
            if paper.arxiv_id and not merged.paper.arxiv_id:
                merged.paper.arxiv_id = paper.arxiv_id
            _merge_into(merged.paper, paper)
        else:
            by_key[key] = Merged(paper=_copy(paper), sightings=[paper])
    return {m.paper.paper_id: m for m in by_key.values()}


def _copy(paper: Paper) -> Paper:
    return Paper(**{**vars(paper), "authors": list(paper.authors)})


# -- what gets stored ---------------------------------------------------------


def content_hash(paper: Paper, embedder_name: str) -> str:
    return text_hash(paper.title, paper.abstract, embedder_name)


def text_hash(title: str, abstract: str, embedder_name: str) -> str:
    """What decides whether a paper must be re-embedded: its text, the chunker, the embedder."""
    from .chunking import CHUNKER_VERSION

    text = "\x1f".join([title, abstract, CHUNKER_VERSION, embedder_name])
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def paper_metadata(merged: Merged, embedder_name: str, added: float) -> dict[str, Any]:
    """The paper's stored record (scalars only; absent fields left out)."""
    from .store import date_to_int, encode_list

    p = merged.paper
    meta: dict[str, Any] = {
        "title": p.title,
        "title_key": p.title_id,
        "content_hash": content_hash(p, embedder_name),
        "sources": encode_list(merged.sources),
        "added": added,
        "added_day": date_to_int(date.fromtimestamp(added)),
        "year_inferred": p.year_inferred,
    }
    optional = {
        "arxiv_id": p.arxiv_id,
        "url": p.url or (f"https://arxiv.org/abs/{p.arxiv_id}" if p.arxiv_id else None),
        "authors": encode_list(p.authors) if p.authors else None,
        "author_count": p.author_count or (len(p.authors) if p.authors else None),
        "organisation": p.organisation,
        "published": date_to_int(p.published),
        "upvotes": p.upvotes,
        "primary_class": p.primary_class,
    }
    meta.update({k: v for k, v in optional.items() if v is not None})
    return meta


def _fill_from_stored(merged: Merged, stored: dict[str, Any]) -> None:
    """Keep what earlier runs learnt about a paper that this input does not say."""
    from .store import decode_list, int_to_date

    p = merged.paper
    if p.published is None and stored.get("published"):
        p.published = int_to_date(int(stored["published"]))
        p.year_inferred = bool(stored.get("year_inferred"))
    for name in ("arxiv_id", "author_count", "organisation", "upvotes", "primary_class"):
        if getattr(p, name) in (None, "") and stored.get(name) not in (None, ""):
            setattr(p, name, stored[name])
    if p.url is None and stored.get("url") and not stored.get("arxiv_id"):
        p.url = stored["url"]
    if not p.authors and stored.get("authors"):
        p.authors = decode_list(stored["authors"])
    merged.known_sources = decode_list(stored.get("sources"))


def _comparable(meta: dict[str, Any]) -> str:
    volatile = ("added", "added_day", "n_chunks")
    return json.dumps({k: v for k, v in meta.items() if k not in volatile}, sort_keys=True)


def ingest(
    paths: list[Path],
    settings: Settings,
    *,
    fmt: str | None = None,
    page_year: int | None = None,
    library: Library | None = None,
    embedder: Embedder | None = None,
    progress: Callable[[int, int], None] | None = None,
    today: date | None = None,
    notify: Callable[[str], None] | None = None,
    field_map: dict[str, str] | None = None,
) -> IngestReport:
    """Read `paths` (the bundled corpus when empty) into the library.

    KeyboardInterrupt is caught between batches' writes: what was written
    stays consistent and the report counts only what was really stored. A
    store failure (disk full, server gone) raises a StoreError that says how
    much was stored. The diff and the writes run under the home's write lock,
    so a concurrent ingest waits (told through `notify`) and then finds the
    first one's papers already stored.
    """
    from .readers import read_file

    started = time.perf_counter()
    files = expand_paths(paths or [bundled_corpus()])
    report = IngestReport()
    papers: list[Paper] = []
    per_file: dict[str, FileReport] = {}
    for path in files:
        result = read_file(path, fmt, page_year=page_year, today=today, field_map=field_map)
        _make_safe(result)
        fr = FileReport(
            source=safe_line(str(path)),
            read=len(result.papers),
            failed=len(result.errors),
            warnings=len(result.warnings),
        )
        per_file[fr.source] = fr
        report.files.append(fr)
        report.failures.extend(result.errors)
        report.warnings.extend(result.warnings)
        papers.extend(result.papers)

    merged = merge_records(papers)

    if library is None:
        from .store import Library

        library = Library.open(settings)
    if embedder is None:
        from .embed import make_embedder

        embedder = make_embedder(settings)
    with library.write_lock(notify):
        _diff_and_write(merged, library, embedder, report, per_file, progress, settings)
    report.seconds = time.perf_counter() - started
    return report


def _diff_and_write(
    merged: dict[str, Merged],
    library: Library,
    embedder: Embedder,
    report: IngestReport,
    per_file: dict[str, FileReport],
    progress: Callable[[int, int], None] | None,
    settings: Settings,
) -> None:
    embedder_key = (embedder.name, embedder.dim)
    library.check_embedder(*embedder_key)

    stored = library.get_papers(merged.keys())
    # A paper stored under its title hash, now seen with its arXiv id (or the reverse).
    replaces: dict[str, str] = {}
    unknown = [pid for pid in merged if pid not in stored]
    by_title = library.find_by_title_keys(merged[pid].paper.title_id for pid in unknown)
    for pid in unknown:
        old = by_title.get(merged[pid].paper.title_id)
        if old and old != pid:
            if merged[pid].paper.arxiv_id:
                replaces[pid] = old
                stored[pid] = library.get_papers([old]).get(old, {})
            else:  # this input lacks the arXiv id the library already knows
                m = merged.pop(pid)
                m.paper.arxiv_id = old if not old.startswith("title:") else None
                merged[old] = m
                stored[old] = library.get_papers([old]).get(old, {})

    now = time.time()
    to_write: list[tuple[Merged, dict[str, Any], str]] = []
    relabel: list[tuple[str, dict[str, Any]]] = []
    status: dict[str, str] = {}
    for pid, m in merged.items():
        old = stored.get(pid)
        if old:
            _fill_from_stored(m, old)
        meta = paper_metadata(m, embedder.name, now)
        if not old:
            status[pid] = "added"
        elif pid in replaces or _comparable(old) != _comparable(meta):
            status[pid] = "updated"
            meta["added"], meta["added_day"] = old.get("added", now), old.get("added_day")
            if meta["added_day"] is None:
                meta.pop("added_day")
        else:
            status[pid] = "unchanged"
            continue
        if old and pid not in replaces and old.get("content_hash") == meta["content_hash"]:
            meta["n_chunks"] = old.get("n_chunks", 0)
            relabel.append((pid, meta))  # same text, new facts: no need to re-embed
        else:
            to_write.append((m, meta, pid))

    written: set[str] = set()
    from .lexical import sync

    since_generation = library.generation
    try:
        from .store import WRITE_BATCH

        for start in range(0, len(relabel), WRITE_BATCH):
            batch = relabel[start : start + WRITE_BATCH]
            library.update_metadata(batch)
            written.update(pid for pid, _ in batch)
        _write_all(to_write, library, embedder, embedder_key, replaces, progress, written)
    except KeyboardInterrupt:
        report.interrupted = True
    except StoreError as exc:
        planned = len(relabel) + len(to_write)
        remedy = getattr(exc, "remedy", "fix that")
        raise type(exc)(
            f"{exc}; {len(written)} of the {planned} new or changed papers were stored "
            f"before that, and the library is consistent: {remedy}, then run the same "
            "command again to store the rest"
        ) from None

    for pid, m in merged.items():
        first = per_file[m.sightings[0].source]
        outcome = status[pid]
        if outcome != "unchanged" and pid not in written:
            outcome = "not_stored"
        setattr(first, outcome, getattr(first, outcome) + 1)
        for sighting in m.sightings[1:]:
            per_file[sighting.source].duplicates += 1
    # What was stored is indexed; an interrupted write is indexed as far as it went.
    sync.update(
        library,
        settings,
        sorted(written),
        [old for new, old in replaces.items() if old != new],
        since_generation,
    )
    report.added = sum(1 for p, s in status.items() if s == "added" and p in written)
    report.updated = sum(1 for p, s in status.items() if s == "updated" and p in written)
    report.unchanged = sum(1 for s in status.values() if s == "unchanged")
    report.not_stored = len(relabel) + len(to_write) - len(written)
    report.total_papers, report.total_chunks = library.counts()


def _write_all(
    to_write, library, embedder, embedder_key, replaces, progress, written: set[str]
) -> None:
    """Chunk and embed batch after batch; each batch's store write runs in a
    thread while the next batch embeds, so the store costs little wall time.

    `written` receives the id of every paper whose write finished, so that an
    interrupted run reports what it really stored.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    from .chunking import chunk_texts, split_abstract
    from .store import PaperWrite

    total = len(to_write)
    fits = getattr(embedder, "fits", None)
    if progress:
        progress(0, total)
    pending: tuple[Future, list[str]] | None = None
    done = 0

    def settle() -> None:
        nonlocal pending, done
        if pending is None:
            return
        future, pids = pending
        try:
            future.result()
        except KeyboardInterrupt:
            raise  # still pending: the handler below waits for it once more
        except BaseException:  # re-raised: only records that nothing of it was stored
            pending = None  # it failed: nothing of it counts as stored
            raise
        pending = None
        written.update(pids)
        done += len(pids)
        if progress:
            progress(done, total)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-write") as pool:
        try:
            for start in range(0, total, EMBED_BATCH_PAPERS):
                batch = to_write[start : start + EMBED_BATCH_PAPERS]
                texts_per_paper = [
                    chunk_texts(
                        m.paper.title, split_abstract(m.paper.title, m.paper.abstract, fits)
                    )
                    for m, _, _ in batch
                ]
                vectors = embedder.embed([t for texts in texts_per_paper for t in texts])
                writes, offset = [], 0
                for (m, meta, pid), texts in zip(batch, texts_per_paper):
                    meta["n_chunks"] = len(texts)
                    writes.append(
                        PaperWrite(
                            pid,
                            meta,
                            m.paper.abstract,
                            texts,
                            vectors[offset : offset + len(texts)],
                        )
                    )
                    offset += len(texts)
                batch_replaces = {pid: replaces[pid] for _, _, pid in batch if pid in replaces}
                settle()
                pending = (
                    pool.submit(library.write, writes, embedder_key, batch_replaces),
                    [pid for _, _, pid in batch],
                )
            settle()
        except BaseException:  # re-raised after the write in flight settles
            # A write already started always finishes: the store stays consistent.
            # (If that write fails too, its error is the one that propagates.)
            settle()
            raise


def reindex(
    settings: Settings,
    library: Library,
    embedder: Embedder,
    progress: Callable[[int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> int:
    """Re-chunk and re-embed every stored paper with `embedder`.

    The new index is built beside the old one and swapped in at the end (see
    `Library.finish_swap`), so an interruption anywhere leaves every paper
    stored: before the swap the old library is untouched; during it, the next
    run (or any `Library.open`) finishes it. When an interrupted run had
    already finished the new index with this same embedder, finishing its
    swap is all that is left to do.
    """
    from .chunking import chunk_texts, split_abstract
    from .store import PaperWrite

    key = (embedder.name, embedder.dim)
    with library.write_lock(notify):
        finished = library.finish_swap() or library.finished_reindex
        library.finished_reindex = False
        if finished and library.embedder_info == key:
            return library.counts()[0]
        records = list(library.iter_papers(("metadatas", "documents")))
        target = library.replacement()
        fits = getattr(embedder, "fits", None)
        if progress:
            progress(0, len(records))
        for start in range(0, len(records), EMBED_BATCH_PAPERS):
            batch = records[start : start + EMBED_BATCH_PAPERS]
            texts = []
            for _pid, meta, extra in batch:
                texts.append(
                    chunk_texts(
                        meta["title"], split_abstract(meta["title"], extra["document"], fits)
                    )
                )
            vectors = embedder.embed([t for group in texts for t in group])
            writes, offset = [], 0
            for (pid, meta, extra), group in zip(batch, texts):
                meta = dict(meta)
                meta["content_hash"] = text_hash(meta["title"], extra["document"], embedder.name)
                meta["n_chunks"] = len(group)
                writes.append(
                    PaperWrite(
                        pid, meta, extra["document"], group, vectors[offset : offset + len(group)]
                    )
                )
                offset += len(group)
            target.write(writes, key)
            if progress:
                progress(min(start + len(batch), len(records)), len(records))
        if records:
            library.swap_in(target)
            from .lexical import sync

            sync.update(library, settings, None)  # a new store: index it whole
    return len(records)
