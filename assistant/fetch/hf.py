"""The Hugging Face Daily Papers API: `GET {ASSISTANT_HF_URL}/api/daily_papers?date=D`.

httpx rather than `huggingface_hub.HfApi.list_daily_papers`: that method
returns parsed `PaperInfo` objects and drops the response itself, which the
inbox must keep verbatim (it is what `assistant ingest` rebuilds from), it
retries on its own terms with no way to honour a long `Retry-After` as a
fault line, and importing huggingface_hub costs more than the whole fetch.
Its base URL (`endpoint=`) would have fitted the replay server; nothing else
did. `date` is the day a paper was added to HF, not its arXiv date.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from ..errors import FetchFault
from ..settings import display_url
from .download import get
from .inbox import hf_file, write_atomic


def check_page(body: bytes, url: str) -> list[Any]:
    """The response must be a JSON array of `{"paper": ...}` items; else a malformed page."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise FetchFault(
            "a malformed response (not whole JSON: cut short?)", display_url(url)
        ) from None
    if not isinstance(value, list) or any(
        not isinstance(item, dict) or not isinstance(item.get("paper"), dict) for item in value
    ):
        raise FetchFault("a malformed response (not a daily-papers list)", display_url(url))
    return value


def fetch_day(client: Any, base_url: str, home: Path, day: date, **http: Any) -> tuple[Path, int]:
    """Fetch one HF day into the inbox: (file, number of papers)."""
    url = f"{base_url.rstrip('/')}/api/daily_papers"
    resp = get(client, url, {"date": day.isoformat()}, **http)
    items = check_page(resp.body, url)
    path = hf_file(home, day)
    write_atomic(path, resp.body)
    return path, len(items)
