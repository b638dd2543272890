"""`assistant follow` run twice in a week: one digest, one feed entry, one e-mail. Real parts:
the replay server with recorded HF responses, MiniLM (its vectors for those papers recorded:
tests/recorded_vectors.py), Chroma, an SMTP server on loopback; the
digest's model is the scripted fake server (its words are not what is tested here)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import feedparser
import pytest
from pytest_httpserver import HTTPServer

from assistant.follow import run_follow
from assistant.llm import ModelClient
from assistant.store import Library

from .cli_runner import run_assistant
from .conftest import make_settings
from .fakeserver import FakeServer
from .replay import MONDAY, Replay
from .smtp_server import SMTPServer


@pytest.fixture
def replay():
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    yield Replay(server)
    server.stop()


def test_follow_twice_in_a_week_delivers_once(
    tmp_path: Path, replay: Replay, replayed, fake_llm: FakeServer, monkeypatch
):
    with SMTPServer(tmp_path) as smtp:
        monkeypatch.setenv("SSL_CERT_FILE", str(smtp.cert))
        settings = make_settings(
            tmp_path / "home",
            hf_url=replay.base,
            follow_sources="hf",
            follow_to="reader@example.org",
            smtp_url=smtp.url(),
            smtp_from="digests@example.org",
            base_url=fake_llm.url,
            model="smollm2",
        )
        library = Library.open(settings)

        def client():
            return ModelClient(settings, model="smollm2")

        today = MONDAY + timedelta(days=7)  # the Monday after 2026-W24
        first = run_follow(
            settings, today=today, library=library, embedder=replayed, make_client=client
        )
        assert first.exit_code == 0, first.lines()
        assert [w.week for w in first.weeks] == ["2026-W24"]
        week = first.weeks[0]
        assert week.papers > 0 and week.feed and week.mailed
        out = tmp_path / "home" / "follow"
        second = run_follow(
            settings,
            today=today + timedelta(days=2),
            library=library,
            embedder=replayed,
            make_client=client,
        )
        assert second.exit_code == 0 and second.weeks == []  # nothing is due twice
        assert sorted(p.name for p in out.iterdir()) == [
            "2026-W24.html",
            "2026-W24.md",
            "feed.xml",
            "state.json",
        ]
        feed = feedparser.parse(str(out / "feed.xml"))
        assert feed.bozo == 0 and len(feed.entries) == 1
        assert feed.entries[0].link.endswith("2026-W24.html")
        assert len(smtp.messages) == 1
        _, rcpt, msg = smtp.messages[0]
        assert rcpt == ["reader@example.org"] and "2026-W24" in msg["Subject"]
        assert msg.get_body(("html",)) is not None and msg.get_body(("plain",)) is not None
        # a late run three weeks on catches up: one digest per missed week (empty weeks say so)
        late = run_follow(
            settings,
            today=today + timedelta(days=21),
            library=library,
            embedder=replayed,
            make_client=client,
            fetch=False,
        )
        assert [w.week for w in late.weeks] == ["2026-W25", "2026-W26", "2026-W27"]
        assert len(smtp.messages) == 1


def test_cli_follow_twice_one_digest_one_entry_one_mail(
    tmp_path: Path, replay: Replay, replayed, fake_llm: FakeServer, monkeypatch
):
    import json
    import os

    import assistant.embed

    monkeypatch.setattr(assistant.embed, "make_embedder", lambda settings: replayed)

    from .conftest import embed_model_dir

    with SMTPServer(tmp_path) as smtp:
        env = {
            **os.environ,
            "ASSISTANT_HOME": str(tmp_path / "home"),
            "ASSISTANT_HF_URL": replay.base,
            "ASSISTANT_FOLLOW_SOURCES": "hf",
            "ASSISTANT_FOLLOW_TO": "reader@example.org",
            "ASSISTANT_SMTP_URL": smtp.url(),
            "ASSISTANT_SMTP_FROM": "digests@example.org",
            "OPENAI_BASE_URL": fake_llm.url,
            "ASSISTANT_MODEL": "smollm2",
            "SSL_CERT_FILE": str(smtp.cert),
        }
        env.pop("OPENAI_API_KEY", None)
        if embed_model_dir():
            env["ASSISTANT_EMBED_MODEL_DIR"] = str(embed_model_dir())
        cmd = ["follow", "--today", "2026-06-15"]
        first = run_assistant(cmd, env=env)
        assert first.returncode == 0, first.stderr
        assert "2026-W24: digest of" in first.stdout and "e-mailed" in first.stdout
        assert smtp.url().split("@")[0].split(":")[-1] not in first.stdout + first.stderr
        second = run_assistant([*cmd, "--json"], env=env)
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["weeks"] == []
        assert len(smtp.messages) == 1
    feed = feedparser.parse(str(tmp_path / "home" / "follow" / "feed.xml"))
    assert feed.bozo == 0 and len(feed.entries) == 1
