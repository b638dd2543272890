"""Each week's digest as `<out>/<week>.md` and `<out>/<week>.html`."""

from __future__ import annotations

from pathlib import Path

from ..fetch.inbox import write_atomic


def write_week(out: Path, week: str, markdown: str, html: str) -> tuple[Path, Path]:
    """Write both forms; a rerun of the same week replaces them whole."""
    md_path, html_path = out / f"{week}.md", out / f"{week}.html"
    write_atomic(md_path, markdown.encode("utf-8"))
    write_atomic(html_path, html.encode("utf-8"))
    return md_path, html_path
