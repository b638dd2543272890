"""Delivery: the Atom feed (validated by feedparser) and e-mail through a real SMTP server on
loopback (aiosmtpd, STARTTLS and AUTH), read back as received."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import feedparser
import pytest

from assistant.deliver import DeliveryError, FeedEntry, build_feed, entry_id, send_digest

from .smtp_server import PASSWORD, SMTPServer


def _entries():
    when = datetime(2026, 6, 15, 8, 0, tzinfo=timezone.utc)
    return [
        FeedEntry("2026-W23", "Digest W23 & more <b>", "s", "2026-W23.html", when, "<p>x</p>"),
        FeedEntry("2026-W24", "Digest W24", "s", "2026-W24.html", when, "<h1>y &amp; z</h1>"),
    ]


def test_feed_is_valid_atom_with_stable_entry_ids(tmp_path: Path):
    text = build_feed(tmp_path, _entries())
    parsed = feedparser.parse(text)
    assert parsed.bozo == 0 and parsed.version == "atom10"
    assert [e.id for e in parsed.entries] == [
        entry_id(tmp_path, "2026-W24"),
        entry_id(tmp_path, "2026-W23"),
    ]
    assert parsed.entries[1].title == "Digest W23 & more <b>"
    assert parsed.entries[0].content[0].value == "<h1>y &amp; z</h1>"
    again = feedparser.parse(build_feed(tmp_path, _entries()[1:]))
    assert again.entries[0].id == parsed.entries[0].id  # rebuilt, same id


@pytest.fixture
def smtp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with SMTPServer(tmp_path) as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(server.cert))  # trust the throwaway certificate
        yield server


def test_mail_html_with_text_alternative_over_starttls(smtp: SMTPServer):
    send_digest(smtp.url(), "digests@example.org", ["a@example.org"], "Digest", "plain", "<p>h</p>")
    assert len(smtp.messages) == 1
    mail_from, rcpt, msg = smtp.messages[0]
    assert mail_from == "digests@example.org" and rcpt == ["a@example.org"]
    assert msg["Subject"] == "Digest"
    assert msg.get_body(("plain",)).get_content().strip() == "plain"
    assert msg.get_body(("html",)).get_content().strip() == "<p>h</p>"


def test_wrong_password_is_one_line_without_the_password(smtp: SMTPServer):
    with pytest.raises(DeliveryError) as info:
        send_digest(smtp.url("wrong-pw-123"), "d@example.org", ["a@example.org"], "s", "t", "h")
    assert "wrong-pw-123" not in str(info.value) and PASSWORD not in str(info.value)
    assert f"smtp://127.0.0.1:{smtp.port}" in str(info.value)
    assert smtp.messages == []


def test_doctor_shows_the_smtp_url_without_its_password(monkeypatch: pytest.MonkeyPatch):
    from assistant.doctor import _settings_check
    from assistant.settings import Settings

    monkeypatch.setenv("ASSISTANT_SMTP_URL", "smtp://me:verysecretpw@mail.example.org:587")
    monkeypatch.setenv("ASSISTANT_FOLLOW_TO", "me@example.org")
    settings = Settings.load(env_file=Path("/nonexistent/.env"))
    detail = _settings_check(settings).detail
    assert "smtp_url=smtp://mail.example.org:587" in detail and "follow_to=me@example.org" in detail
    assert "verysecretpw" not in detail and "verysecretpw" not in repr(settings)
