"""Where fetched responses are kept: `ASSISTANT_HOME/inbox/<source>/`, one file per day
(and per category for arXiv), exactly as the server sent them.

The inbox is the record of what was fetched: a day whose file is there is not
asked for again, and `assistant ingest ASSISTANT_HOME/inbox` rebuilds the
library from it offline. Files appear whole or not at all (written beside
their place, then renamed), so an interruption never leaves half a response
where a reader would take it for a day's papers. Work in progress (the pages
of an arXiv day not yet complete) waits in hidden folders, which ingest skips.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

STATE_DIR = ".state"
PARTIAL_DIR = ".partial"


def inbox_root(home: Path) -> Path:
    return home / "inbox"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def hf_file(home: Path, day: date) -> Path:
    return inbox_root(home) / "hf" / f"{day.isoformat()}.json"


def arxiv_folder(home: Path, category: str) -> Path:
    return inbox_root(home) / "arxiv" / category


def arxiv_files(home: Path, category: str, day: date) -> list[Path]:
    """The stored pages of one arXiv day: `D.xml`, or `D.page1.xml`, `D.page2.xml`, ...

    The first page is put in place last, so its presence means the day is whole.
    """
    folder = arxiv_folder(home, category)
    single = folder / f"{day.isoformat()}.xml"
    if single.is_file():
        return [single]
    first = folder / f"{day.isoformat()}.page1.xml"
    if not first.is_file():
        return []
    pages = sorted(
        folder.glob(f"{day.isoformat()}.page*.xml"),
        key=lambda p: int(p.name.rsplit(".page", 1)[1].split(".")[0]),
    )
    return pages


def arxiv_partial(home: Path, category: str, day: date) -> Path:
    return arxiv_folder(home, category) / PARTIAL_DIR / day.isoformat()


def load_versions(home: Path) -> dict[str, int]:
    """The newest arXiv version seen of each paper (bare id -> version)."""
    path = inbox_root(home) / STATE_DIR / "arxiv-versions.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}


def save_versions(home: Path, versions: dict[str, int]) -> None:
    path = inbox_root(home) / STATE_DIR / "arxiv-versions.json"
    write_atomic(path, json.dumps(versions, sort_keys=True, indent=0).encode("utf-8"))
