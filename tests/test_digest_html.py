"""The HTML digest is one standalone page that carries no live HTML from a title or a model.

A digest is meant to be e-mailed or published, so a paper titled
`<script>alert(1)</script>` or a model that writes `<img src=x onerror=...>`
must reach the page as text. Checked on the string and in a real browser:
headless Chromium (Debian's package, installed by .ci/run) loads the page and
dumps its DOM; the tables must be there and an injected handler that would
change document.title must never have run.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from assistant.digest import Digest, DigestPaper, ProseSentence, Theme, render_html, render_markdown
from assistant.digest.render import page_title
from assistant.digest.table import build_tables

SCRIPT = "<script>document.title='pwned'</script>"
IMG = "<img src=x onerror=\"document.title='pwned'\">"
TITLES = [
    "Attention Sinks <script>alert(1)</script>",
    "Pruning <img src=x onerror=alert(1)>: a | pipe and *stars*",
    f"Streaming LLMs {SCRIPT}",
    f"Small Models {IMG}",
]


def hostile_digest() -> Digest:
    """A digest whose titles, abstract, theme name, key phrases and prose all carry HTML."""
    papers = [
        DigestPaper(
            f"p{i}",
            title,
            f"Streaming models struggle with long inputs {IMG}. We propose attention "
            f"sinks {SCRIPT}. It improves perplexity by 22.5% on 4,096 tokens.",
            date(2024, 3, i + 1),
            None,
            "javascript:alert(1)" if i == 0 else f"https://arxiv.org/abs/2403.0000{i}",
            10 * i,
            None,
        )
        for i, title in enumerate(TITLES)
    ]
    first = Theme(f"Attention sinks {IMG}", papers[:2], key_phrases=["attention sinks", SCRIPT])
    first.prose = [
        ProseSentence(f"Both keep attention sinks {IMG}.", ["p0", "p1"]),
        ProseSentence(f"Removed {SCRIPT}.", ["p0"], reason="not supported"),
    ]
    first.silhouette = 0.2
    second = Theme(f"Small models {SCRIPT}", papers[2:3], key_phrases=["small models"])
    second.silhouette = 0.1
    themes = [first, second, Theme("Other papers", papers[3:], other=True)]
    build_tables(themes)
    digest = Digest(
        date(2024, 3, 1),
        date(2024, 3, 7),
        "published",
        themes,
        papers,
        date(2024, 2, 23),
        date(2024, 2, 29),
        0,
        4,
        topic=f"sinks {SCRIPT}",
    )
    digest.silhouette = 0.15
    return digest


def test_every_title_and_model_string_is_escaped_in_the_html():
    page = render_html(hostile_digest())
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert (
        "onerror=" not in page.replace("onerror=&quot;", "").replace("onerror=alert", "")
        or "&lt;img" in page
    )
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'href="javascript:' not in page  # only http(s) links
    assert 'href="https://arxiv.org/abs/2403.00001"' in page
    assert "Removed" not in page  # a removed sentence is not shown
    assert page.count('<table class="comparison">') == 3
    assert "Content-Security-Policy" in page and "script-src" not in page


def test_markdown_escapes_titles_so_a_renderer_keeps_them_as_text():
    markdown = render_markdown(hostile_digest())
    assert not re.search(r"(?<!\\)<(?:script|img|/script)", markdown)  # only as \<script
    assert "| Paper | Problem | Approach | Key result |" in markdown
    rendered = MarkdownIt("commonmark").enable("table").render(markdown)  # raw HTML allowed
    assert "<script" not in rendered and "<img" not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert rendered.count("<table>") == 3
    assert "javascript:" not in rendered
    assert "a | pipe" in re.sub(r"\\(.)", r"\1", markdown)  # the pipe did not split the row


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail(
            "chromium is not installed: apt-get update && apt-get install -y chromium "
            "(.ci/run does this)"
        )
    return found


def _dump_dom(page: Path, profile: Path) -> str:
    proc = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_a_real_browser_shows_the_tables_and_runs_no_injected_handler(tmp_path: Path):
    # The harness can see a handler run: a page whose own script changes its title.
    control = tmp_path / "control.html"
    control.write_text(
        "<!DOCTYPE html><html><head><title>before</title></head><body>"
        "<script>document.title='pwned'</script><p>x</p></body></html>"
    )
    assert "<title>pwned</title>" in _dump_dom(control, tmp_path / "profile-control")

    digest = hostile_digest()
    page = tmp_path / "digest.html"
    page.write_text(render_html(digest), encoding="utf-8")
    dom = _dump_dom(page, tmp_path / "profile")
    title = re.search(r"<title>(.*?)</title>", dom, re.DOTALL)
    assert title and html.unescape(title.group(1)) == page_title(digest)  # never changed
    assert page_title(digest).startswith("Paper digest: 2024-03-01 to 2024-03-07 — sinks <scr")
    assert dom.count('<table class="comparison">') == 3
    assert len(re.findall(r"<tr><td class=\"paper\">", dom)) == len(TITLES)
    assert "<img" not in dom and "<script" not in dom  # no element came from the text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
