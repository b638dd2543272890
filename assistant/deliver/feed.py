"""`feed.xml`: an Atom feed with one entry per weekly digest, so any feed reader follows them.

Entry ids are `urn:uuid:` values derived from the output folder and the week,
so a rebuilt feed (every run rebuilds it from the delivered weeks) keeps each
entry's id and a reader never shows a digest twice.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ATOM_NS = "http://www.w3.org/2005/Atom"


@dataclass
class FeedEntry:
    week: str
    title: str
    summary: str
    html_file: str  # relative to the feed
    updated: datetime
    content_html: str = ""


def feed_id(out: Path) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'paper-assistant:' + str(out.resolve()))}"


def entry_id(out: Path, week: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'paper-assistant:{out.resolve()}:{week}')}"


def _stamp(when: datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def build_feed(out: Path, entries: list[FeedEntry], title: str = "Paper digests") -> str:
    """The whole feed, newest week first."""
    ET.register_namespace("", ATOM_NS)
    root = ET.Element(f"{{{ATOM_NS}}}feed")
    ordered = sorted(entries, key=lambda e: e.week, reverse=True)
    ET.SubElement(root, f"{{{ATOM_NS}}}id").text = feed_id(out)
    ET.SubElement(root, f"{{{ATOM_NS}}}title").text = title
    updated = max((e.updated for e in ordered), default=None)
    ET.SubElement(root, f"{{{ATOM_NS}}}updated").text = _stamp(
        updated or datetime.now().astimezone()
    )
    author = ET.SubElement(root, f"{{{ATOM_NS}}}author")
    ET.SubElement(author, f"{{{ATOM_NS}}}name").text = "paper-assistant"
    ET.SubElement(root, f"{{{ATOM_NS}}}link", rel="self", href="feed.xml")
    for entry in ordered:
        node = ET.SubElement(root, f"{{{ATOM_NS}}}entry")
        ET.SubElement(node, f"{{{ATOM_NS}}}id").text = entry_id(out, entry.week)
        ET.SubElement(node, f"{{{ATOM_NS}}}title").text = entry.title
        ET.SubElement(node, f"{{{ATOM_NS}}}updated").text = _stamp(entry.updated)
        ET.SubElement(
            node, f"{{{ATOM_NS}}}link", rel="alternate", type="text/html", href=entry.html_file
        )
        ET.SubElement(node, f"{{{ATOM_NS}}}summary").text = entry.summary
        if entry.content_html:
            content = ET.SubElement(node, f"{{{ATOM_NS}}}content", type="html")
            content.text = entry.content_html
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
