"""Delivering a week's digest: files in an output folder, an Atom feed, an optional e-mail.

- `files`  each week's Markdown and HTML digest, written whole or not at all
- `feed`   `feed.xml`: one Atom entry per digest, ids stable across runs (valid per feedparser)
- `mail`   the HTML digest with a plain-text alternative over SMTP (STARTTLS), password masked
"""

from __future__ import annotations

from ..errors import DeliveryError
from .feed import FeedEntry, build_feed, entry_id
from .files import write_week
from .mail import send_digest

__all__ = ["DeliveryError", "FeedEntry", "build_feed", "entry_id", "send_digest", "write_week"]
