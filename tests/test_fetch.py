"""`assistant fetch`: real recorded HF and arXiv responses replayed by a local server
(tests/replay.py, tests/data/recorded/README.md), the real MiniLM's vectors (recorded:
tests/recorded_vectors.py) and a real Chroma store.
No test reaches the internet; no test sleeps for arXiv's 3 s (ASSISTANT_ARXIV_DELAY=0)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from assistant.fetch import run_fetch
from assistant.fetch.days import week_days
from assistant.store import Library

from .cli_runner import run_assistant
from .conftest import ROOT, embed_model_dir, make_settings
from .replay import ARXIV_WEEK, MONDAY, WEEK, Replay, arxiv_ids, hf_ids, wait_for

TODAY = date(2026, 7, 1)  # every day of the test week is over and settled
DAYS = [MONDAY + timedelta(i) for i in range(7)]


@pytest.fixture
def replay():
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    rep = Replay(server)
    yield rep
    rep.hang.set()
    if server.is_running():
        server.stop()


def _settings(home: Path, replay: Replay, **changes):
    values = {
        "hf_url": replay.base,
        "arxiv_url": replay.base,
        "arxiv_delay": 0.0,
        "arxiv_page_size": 10,
        "fetch_timeout": 5.0,
    }
    values.update(changes)
    return make_settings(home, **values)


def _stored_ids(settings) -> set[str]:
    library = Library.open(settings)
    return {meta.get("arxiv_id") for _, meta, _ in library.iter_papers()}


def test_hf_week_stores_each_recorded_paper_once_and_a_second_run_asks_nothing(
    tmp_path: Path, replay: Replay, replayed
):
    settings = _settings(tmp_path / "home", replay)
    library = Library.open(settings)
    report = run_fetch(
        settings, "hf", DAYS, today=TODAY, library=library, embedder=replayed, sleep=lambda s: None
    )
    assert report.complete and report.exit_code == 0
    assert replay.requests("/api/daily_papers") == 7
    expected = hf_ids(DAYS)
    assert len(expected) == 35  # 30 + 5 distinct papers, served on alternate days
    assert _stored_ids(settings) == expected
    assert report.ingest.added == 35
    inbox = sorted(p.name for p in (tmp_path / "home" / "inbox" / "hf").iterdir())
    assert inbox == [f"{d.isoformat()}.json" for d in DAYS]
    # verbatim: the stored file is the recorded response, byte for byte
    from .replay import hf_for

    assert (tmp_path / "home/inbox/hf/2026-06-12.json").read_bytes() == hf_for(
        date(2026, 6, 12)
    ).read_bytes()

    again = run_fetch(
        settings, "hf", DAYS, today=TODAY, library=library, embedder=replayed, sleep=lambda s: None
    )
    assert replay.requests("/api/daily_papers") == 7  # no request for days already fetched
    assert [r.status for r in again.results] == ["cached"] * 7
    assert again.ingest.added == 0 and again.ingest.unchanged == 35
    assert "7 already in the inbox (no request)" in again.line()
    assert replayed.misses == 0  # the recording holds every chunk fetch stores


def test_arxiv_week_pages_and_stores_each_recorded_paper_once(
    tmp_path: Path, replay: Replay, replayed
):
    settings = _settings(tmp_path / "home", replay)
    library = Library.open(settings)
    report = run_fetch(
        settings,
        "arxiv",
        DAYS,
        ["cs.CL"],
        today=TODAY,
        library=library,
        embedder=replayed,
        sleep=lambda s: None,
    )
    assert report.complete, report.line()
    expected = arxiv_ids(DAYS)
    assert len(expected) == 67  # 60 paged + 1605.08386 + 1707.08567 (twice) + 5
    assert _stored_ids(settings) == expected
    # Monday: 6 full pages and the empty page after them; every other day one request
    assert replay.requests("/api/query") == 7 + 6
    folder = tmp_path / "home/inbox/arxiv/cs.CL"
    assert len(list(folder.glob("2026-06-08.page*.xml"))) == 7
    assert (folder / "2026-06-09.xml").is_file()
    assert not (folder / ".partial").exists()
    again = run_fetch(settings, "arxiv", DAYS, ["cs.CL"], today=TODAY, ingest=False)
    assert replay.requests("/api/query") == 13 and again.exit_code == 0
    assert replayed.misses == 0


def test_arxiv_pause_between_requests_is_kept(tmp_path: Path, replay: Replay):
    settings = _settings(tmp_path / "home", replay, arxiv_delay=3.0)
    waits: list[float] = []
    run_fetch(settings, "arxiv", DAYS[:3], ["cs.CL"], today=TODAY, ingest=False, sleep=waits.append)
    # 9 requests (7 Monday pages, Tuesday, Wednesday): 8 pauses, each close to 3 s
    assert len(waits) == 8 and all(2.5 < w <= 3.0 for w in waits)


def test_plug_pulled_half_way_keeps_what_was_fetched_and_says_so(
    tmp_path: Path, replay: Replay, replayed
):
    settings = _settings(tmp_path / "home", replay, fetch_timeout=2.0)
    library = Library.open(settings)

    def pull_plug(label: str, done: int, total: int) -> None:
        if label.startswith("hf ") and done == 2:
            replay.server.stop()

    report = run_fetch(
        settings,
        "hf",
        DAYS,
        today=TODAY,
        library=library,
        embedder=replayed,
        progress=pull_plug,
        sleep=lambda s: None,
    )
    assert not report.complete and report.exit_code == 1
    assert [r.status for r in report.results][:3] == ["fetched", "fetched", "failed"]
    assert _stored_ids(settings) == hf_ids(DAYS[:2])
    line = report.line()
    assert "\n" not in line
    assert "fetched 2 days" in line and "NOT fetched: 5 days from hf 2026-06-10" in line
    assert "connection refused" in line and "library is consistent" in line
    # the next run resumes: only the missing days are asked for
    replay.server.start()
    before = replay.requests("/api/daily_papers")
    resumed = run_fetch(
        settings, "hf", DAYS, today=TODAY, library=library, embedder=replayed, sleep=lambda s: None
    )
    assert resumed.complete
    assert replay.requests("/api/daily_papers") - before == 5
    assert _stored_ids(settings) == hf_ids(DAYS)


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("503-long", "answered 503, Retry-After 3600 s"),
        ("cut", "malformed response"),
        ("hang", "timeout"),
    ],
)
def test_each_fault_is_one_line_and_keeps_the_days_before(
    tmp_path: Path, replay: Replay, fault: str, says: str
):
    settings = _settings(tmp_path / "home", replay, fetch_timeout=0.5)
    replay.faults[DAYS[1]] = fault
    report = run_fetch(settings, "arxiv", DAYS[1:4], ["cs.CL"], today=TODAY, ingest=False)
    assert report.results[0].status == "failed"
    assert says in report.fault and "\n" not in report.line()
    assert not list((tmp_path / "home/inbox/arxiv/cs.CL").glob("2026-06-09*"))


def test_retry_after_429_is_waited_for_then_the_day_is_fetched(tmp_path: Path, replay: Replay):
    settings = _settings(tmp_path / "home", replay)
    replay.faults[DAYS[4]] = "429-once"
    waits: list[float] = []
    report = run_fetch(settings, "hf", DAYS[3:6], today=TODAY, ingest=False, sleep=waits.append)
    assert report.complete and [r.status for r in report.results] == ["fetched"] * 3
    assert waits == [0.0]
    assert replay.requests("/api/daily_papers") == 4


def test_arxiv_error_entry_is_a_fault(tmp_path: Path, replay: Replay):
    from assistant.errors import FetchFault
    from assistant.fetch.arxiv import check_page

    body = (ROOT / "tests/data/recorded/arxiv/arxivpy-id_abc_s0_m100.xml").read_bytes()
    with pytest.raises(FetchFault, match="incorrect id format for abc"):
        check_page(body, "http://x/api/query")


def _env(home: Path, env_extra: dict[str, str]) -> dict[str, str]:
    env = {
        **os.environ,
        "ASSISTANT_HOME": str(home),
        "ASSISTANT_ARXIV_DELAY": "0",
        "ASSISTANT_ARXIV_PAGE_SIZE": "10",
        **env_extra,
    }
    if embed_model_dir():
        env["ASSISTANT_EMBED_MODEL_DIR"] = str(embed_model_dir())
    env.pop("OPENAI_API_KEY", None)
    return env


def _cli(home: Path, env_extra: dict[str, str], *args: str) -> subprocess.Popen:
    """`assistant fetch ARGS` as a process, for a test that signals it from outside."""
    return subprocess.Popen(
        [sys.executable, "-m", "assistant", "fetch", *args],
        env=_env(home, env_extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=home.parent,
    )


def test_cli_fetch_json_and_offline_line(
    tmp_path: Path, replay: Replay, replayed, monkeypatch: pytest.MonkeyPatch
):
    import assistant.embed

    monkeypatch.setattr(assistant.embed, "make_embedder", lambda settings: replayed)
    home = tmp_path / "home"
    env = {"ASSISTANT_HF_URL": replay.base, "ASSISTANT_ARXIV_URL": replay.base}
    proc = run_assistant(
        ["fetch", "arxiv", "--category", "cs.CL", "--week", WEEK, "--json"],
        env=_env(home, env),
        cwd=tmp_path,
    )
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 0, err
    data = json.loads(out)
    assert data["complete"] and data["fetched"] == 7 and data["ingest"]["added"] == 67
    assert replayed.misses == 0

    # offline: nothing listens there any more
    replay.server.stop()
    proc = run_assistant(["fetch", "hf", "--week", WEEK], env=_env(home, env), cwd=tmp_path)
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 1
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "NOT fetched: 7 days" in lines[0] and "connection refused" in lines[0]
    assert "Traceback" not in err


def test_sigterm_half_way_keeps_the_fetched_days(tmp_path: Path, replay: Replay):
    home = tmp_path / "home"
    replay.faults[DAYS[2]] = "hang"
    env = {"ASSISTANT_HF_URL": replay.base, "ASSISTANT_FETCH_TIMEOUT": "20"}
    proc = _cli(home, env, "hf", "--week", WEEK)
    inbox = home / "inbox" / "hf"
    assert wait_for(lambda: inbox.is_dir() and len(list(inbox.glob("*.json"))) == 2)
    assert wait_for(lambda: replay.requests("/api/daily_papers") >= 2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "fetched 2 days" in out and "interrupted" in out
    assert sorted(p.name for p in inbox.glob("*.json")) == ["2026-06-08.json", "2026-06-09.json"]
    assert "Traceback" not in err


def test_week_days():
    assert week_days(WEEK) == (MONDAY, MONDAY + timedelta(6))
    assert set(ARXIV_WEEK) == set(DAYS)


@pytest.mark.parametrize(
    "args", [["fetch", "--help"], ["fetch", "arxiv", "--help"], ["follow", "--help"]]
)
def test_new_commands_help_stays_light(args: list[str], tmp_path: Path):
    from .test_cli import LIGHT_PROBE

    env = {**os.environ, "ASSISTANT_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", LIGHT_PROBE, *args], env=env, capture_output=True, text=True
    )
    assert "RC 0 HEAVY []" in proc.stdout, proc.stdout + proc.stderr


def test_newer_arxiv_version_is_named(tmp_path: Path, replay: Replay):
    from assistant.fetch.inbox import load_versions, save_versions

    home = tmp_path / "home"
    save_versions(home, {"2204.08348": 2, "2202.12139": 1})  # what an earlier run had seen
    settings = _settings(home, replay)
    report = run_fetch(settings, "arxiv", DAYS[:1], ["cs.CL"], today=TODAY, ingest=False)
    assert report.newer_versions == [("2204.08348", 2, 3)]  # the Monday pages hold 2204.08348v3
    assert "newer arXiv versions: 2204.08348 v2→v3" in report.line()
    assert load_versions(home)["2204.08348"] == 3


def test_arxiv_day_cut_on_its_third_page_resumes_from_the_pages_it_has(
    tmp_path: Path, replay: Replay
):
    settings = _settings(tmp_path / "home", replay)
    replay.faults[MONDAY] = "cut@20"  # pages 1-2 arrive whole, page 3 is cut short (once)
    first = run_fetch(settings, "arxiv", DAYS[:1], ["cs.CL"], today=TODAY, ingest=False)
    assert first.results[0].status == "failed" and "malformed" in first.fault
    folder = tmp_path / "home/inbox/arxiv/cs.CL"
    assert not list(folder.glob("2026-06-08*"))  # no half day where ingest would read it
    assert len(list((folder / ".partial" / "2026-06-08").iterdir())) == 2
    asked = replay.requests("/api/query")
    again = run_fetch(settings, "arxiv", DAYS[:1], ["cs.CL"], today=TODAY, ingest=False)
    assert again.complete and again.results[0].papers == 60
    assert replay.requests("/api/query") - asked == 5  # pages 3-6 and the empty one, not 1-2
    assert len(list(folder.glob("2026-06-08.page*.xml"))) == 7
    assert not (folder / ".partial").exists()
