"""Weekly digests that group a window's papers by theme and compare them.

One module per step, in the order `build.build_digest` runs them:

- `select`  which papers: the window, a topic, a cap; the previous window
- `themes`  Ward clustering (a large window: centroid themes with outlier reduction, areas),
            "Other papers", coherence, trends by the same assignment rule
- `naming`  theme names from distinctive key phrases (c-TF-IDF); the model's only if valid
- `table`   per-theme comparison table, cells copied verbatim from the abstracts
- `prose`   the model's comparative sentences, prompts budgeted to the context window
- `check`   each prose sentence supported by what it cites, no invented papers
- `render`  Markdown, one standalone HTML page, the output path
- `score`   `assistant eval digest`: a digest's JSON scored deterministically
- `data`    the records shared by all of them (and the JSON shape)
"""

from __future__ import annotations

from .build import build_digest, digest_markdown
from .data import Area, Cell, Digest, DigestPaper, Pick, ProseSentence, Row, Theme
from .render import default_output, digest_json, empty_message, render_html, render_markdown
from .themes import cluster
from .window import filter_topic, parse_week, resolve_window, select_papers

__all__ = [
    "Area",
    "Cell",
    "Digest",
    "DigestPaper",
    "Pick",
    "ProseSentence",
    "Row",
    "Theme",
    "build_digest",
    "cluster",
    "default_output",
    "digest_json",
    "digest_markdown",
    "empty_message",
    "filter_topic",
    "parse_week",
    "render_html",
    "render_markdown",
    "resolve_window",
    "select_papers",
]
