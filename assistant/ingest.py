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

from .errors import UsageError
from .records import Paper, RecordError

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


@dataclass
class IngestReport:
    files: list[FileReport] = field(default_factory=list)
    failures: list[RecordError] = field(default_factory=list)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    total_papers: int = 0
    total_chunks: int = 0
    seconds: float = 0.0
    interrupted: bool = False

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
            "files": [vars(f) for f in self.files],
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
        }


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files to read: folders are walked (hidden files skipped), order is stable."""
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        if path.is_dir():
            files.extend(
                p for p in sorted(path.rglob("*"))
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            files.append(path)
    return files


# -- merging ----------------------------------------------------------------

_FILLABLE = ("arxiv_id", "url", "author_count", "organisation", "published", "upvotes")


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
    for name in ("arxiv_id", "author_count", "organisation", "upvotes"):
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
) -> IngestReport:
    """Read `paths` (the bundled corpus when empty) into the library.

    KeyboardInterrupt is caught between batches' writes: what was written
    stays consistent and the report says the run was interrupted.
    """
    from .readers import read_file

    started = time.perf_counter()
    files = expand_paths(paths or [bundled_corpus()])
    report = IngestReport()
    papers: list[Paper] = []
    per_file: dict[str, FileReport] = {}
    for path in files:
        result = read_file(path, fmt, page_year=page_year, today=today)
        fr = FileReport(source=str(path), read=len(result.papers), failed=len(result.errors))
        per_file[str(path)] = fr
        report.files.append(fr)
        report.failures.extend(result.errors)
        papers.extend(result.papers)

    merged = merge_records(papers)

    if library is None:
        from .store import Library

        library = Library.open(settings)
    if embedder is None:
        from .embed import make_embedder

        embedder = make_embedder(settings)
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

    for pid, m in merged.items():
        first = per_file[m.sightings[0].source]
        setattr(first, status[pid], getattr(first, status[pid]) + 1)
        for sighting in m.sightings[1:]:
            per_file[sighting.source].duplicates += 1

    from . import keyword

    since_generation = library.generation
    try:
        library.update_metadata(relabel)
        _write_all(to_write, library, embedder, embedder_key, replaces, progress)
    except KeyboardInterrupt:
        report.interrupted = True
    keyword.update(library, settings, [pid for pid, _ in relabel] + [pid for _, _, pid in to_write],
                   [old for new, old in replaces.items() if old != new], since_generation)
    report.added = sum(1 for s in status.values() if s == "added")
    report.updated = sum(1 for s in status.values() if s == "updated")
    report.unchanged = sum(1 for s in status.values() if s == "unchanged")
    report.total_papers, report.total_chunks = library.counts()
    report.seconds = time.perf_counter() - started
    return report


def _write_all(to_write, library, embedder, embedder_key, replaces, progress) -> None:
    """Chunk and embed batch after batch; each batch's store write runs in a
    thread while the next batch embeds, so the store costs little wall time."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from .chunking import chunk_texts, split_abstract
    from .store import PaperWrite

    total = len(to_write)
    done = 0
    fits = getattr(embedder, "fits", None)
    if progress:
        progress(0, total)
    pending: Future | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-write") as pool:
        try:
            for start in range(0, total, EMBED_BATCH_PAPERS):
                batch = to_write[start:start + EMBED_BATCH_PAPERS]
                texts_per_paper = [
                    chunk_texts(m.paper.title,
                                split_abstract(m.paper.title, m.paper.abstract, fits))
                    for m, _, _ in batch
                ]
                vectors = embedder.embed([t for texts in texts_per_paper for t in texts])
                writes, offset = [], 0
                for (m, meta, pid), texts in zip(batch, texts_per_paper):
                    meta["n_chunks"] = len(texts)
                    writes.append(PaperWrite(pid, meta, m.paper.abstract, texts,
                                             vectors[offset:offset + len(texts)]))
                    offset += len(texts)
                batch_replaces = {pid: replaces[pid] for _, _, pid in batch if pid in replaces}
                if pending is not None:
                    pending.result()
                    done += EMBED_BATCH_PAPERS
                    if progress:
                        progress(min(done, total), total)
                pending = pool.submit(library.write, writes, embedder_key, batch_replaces)
        finally:
            # A write already started always finishes: the store stays consistent.
            if pending is not None:
                pending.result()
    if progress:
        progress(total, total)


def reindex(settings: Settings, library: Library, embedder: Embedder,
            progress: Callable[[int, int], None] | None = None) -> int:
    """Re-chunk and re-embed every stored paper with `embedder`.

    The new index is built beside the old one and swapped in at the end, so an
    interrupted reindex leaves the old library as it was.
    """
    from .chunking import chunk_texts, split_abstract
    from .store import PaperWrite

    records = list(library.iter_papers(("metadatas", "documents")))
    target = library.replacement()
    key = (embedder.name, embedder.dim)
    fits = getattr(embedder, "fits", None)
    if progress:
        progress(0, len(records))
    for start in range(0, len(records), EMBED_BATCH_PAPERS):
        batch = records[start:start + EMBED_BATCH_PAPERS]
        texts = []
        for _pid, meta, extra in batch:
            texts.append(chunk_texts(meta["title"],
                                     split_abstract(meta["title"], extra["document"], fits)))
        vectors = embedder.embed([t for group in texts for t in group])
        writes, offset = [], 0
        for (pid, meta, extra), group in zip(batch, texts):
            meta = dict(meta)
            meta["content_hash"] = text_hash(meta["title"], extra["document"], embedder.name)
            meta["n_chunks"] = len(group)
            writes.append(PaperWrite(pid, meta, extra["document"], group,
                                     vectors[offset:offset + len(group)]))
            offset += len(group)
        target.write(writes, key)
        if progress:
            progress(min(start + len(batch), len(records)), len(records))
    if records:
        library.swap_in(target)
        from . import keyword

        keyword.update(library, settings, None)  # a new store: index it whole
    return len(records)
