"""Chat-session search latency: SQLite FTS5 (ranked, with snippets) against the old LIKE scan.

Builds `--messages` (default 10,000) messages across `--sessions` (default
500) sessions in a temporary ASSISTANT_HOME's sessions.db, made from the
bundled sample's papers (assistant/data/hf-daily-papers, read with the
ingest readers): each turn is a question naming a paper's topic, and an
answer of two or three of its abstract's sentences with `[n]` citations and
the cited papers as sources, stored as `Answer.to_dict()` JSON the way `ask`
and the chat store them. Sessions are titled by their first question.

Then times `--searches` (default 200) searches, each as the chat's session
list runs it on a keystroke (`SessionStore.list_sessions(search=...)`: every
matching session, best first, with its snippet), in a fixed mix:

  * single words from the corpus (frequent and middling),
  * two words,
  * prefixes as typed, letter by letter (`g`, `ga`, `gal`, ... `galore`),
  * a rare term (in one paper) and the most frequent content word.

The same queries run through the old `LIKE '%w%'` search (the store's
fallback when sqlite has no FTS5) for comparison, and through
`search_messages` (the best 50 message hits with snippets). Also timed:
building the index for an existing 10k-message database (what the v3 upgrade
does once, on first open), and 200 `add_message` calls with and without the
index's triggers.

Run from the repository root:

    .venv/bin/python bench/session_search_bench.py
    .venv/bin/python bench/session_search_bench.py --messages 50000 --sessions 2000

No embedding model is needed.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (  # noqa: E402
    REPO,
    load_line,
    machine_line,
    median,
    percentile,
    print_table,
    spread,
    temp_home,
)

SAMPLE = REPO / "assistant" / "data" / "hf-daily-papers"
QUESTIONS = [
    "What does {topic} propose?",
    "How does {topic} work?",
    "Which paper introduces {topic}, and what does it improve?",
    "Compare {topic} with earlier methods.",
    "What are the results of {topic} on its benchmarks?",
    "Is there a paper about {topic}?",
]
STOP = set(
    "the a an of and or to in on for with by from as at is are be we our this that these "
    "which its it their can not into than over under such more most both also while show "
    "using based new results paper propose proposed method methods approach".split()
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


def sample_papers() -> list[dict]:
    """The bundled sample's papers: id, title, date, url and abstract sentences."""
    from assistant.readers import read_file

    papers = []
    for path in sorted(SAMPLE.glob("*.txt")):
        for p in read_file(path).papers:
            sentences = [s for s in _SENTENCE.split(p.abstract) if len(s) > 30]
            if sentences:
                papers.append(
                    {
                        "paper_id": p.paper_id,
                        "title": p.title,
                        "published": p.published.isoformat() if p.published else None,
                        "url": p.url,
                        "sentences": sentences,
                    }
                )
    if not papers:
        sys.exit(f"no papers read from {SAMPLE}")
    return papers


def turn(rng: random.Random, papers: list[dict]) -> tuple[str, str, dict]:
    """A question about one paper and a cited answer from its (and another's) abstract."""
    cited = rng.sample(papers, 2)
    topic = cited[0]["title"].split(":")[0][:80]
    question = rng.choice(QUESTIONS).format(topic=topic)
    parts = []
    for n, paper in enumerate(cited, start=1):
        start = rng.randrange(len(paper["sentences"]))
        parts += [f"{s} [{n}]" for s in paper["sentences"][start : start + rng.choice((1, 2))]]
    text = " ".join(parts)
    sources = [
        {
            "n": n,
            "paper_id": p["paper_id"],
            "title": p["title"],
            "published": p["published"],
            "passage": " ".join(p["sentences"][:3]),
            "url": p["url"],
            "similarity": round(rng.uniform(0.4, 0.8), 4),
        }
        for n, p in enumerate(cited, start=1)
    ]
    answer = {
        "question": question,
        "answer": text,
        "citations": [
            {"n": s["n"], "paper_id": s["paper_id"], "title": s["title"], "supported": True}
            for s in sources
        ],
        "sources": sources,
        "abstained": False,
        "model": "bench",
    }
    return question, text, answer


def build(home: Path, papers: list[dict], messages: int, sessions: int, seed: int) -> float:
    """Fill sessions.db; returns the seconds it took."""
    from assistant.answer import Answer
    from assistant.sessions import SessionStore

    rng = random.Random(seed)
    per = max(2, messages // sessions // 2 * 2)
    start = time.perf_counter()
    with SessionStore.open(home) as store:
        made = 0
        while made < messages:
            rows = []
            for _ in range(min(per, messages - made) // 2 or 1):
                question, text, answer = turn(rng, papers)
                rows += [("user", question, None), ("assistant", text, Answer.from_dict(answer))]
            session = store.create_session(title=rows[0][1][:60])
            made += store.bulk_add(session.id, rows)
    return time.perf_counter() - start


def queries(papers: list[dict], n: int, seed: int) -> list[tuple[str, str]]:
    """(kind, text) pairs: the fixed mix described in the module docstring."""
    rng = random.Random(seed)
    words = Counter(
        w
        for p in papers
        for s in p["sentences"]
        for w in re.findall(r"[a-z][a-z0-9-]{3,}", s.lower())
        if w not in STOP
    )
    common = [w for w, _ in words.most_common(40)]
    middling = [w for w, c in words.most_common() if 3 <= c <= 10][:200]
    rare = next(w for w, c in words.most_common()[::-1] if c == 1 and len(w) > 7)
    frequent = common[0]
    typed = "galore"
    mix: list[tuple[str, str]] = [("rare term", rare), ("frequent term", frequent)]
    mix += [("prefix as typed", typed[: i + 1]) for i in range(len(typed))]
    while len(mix) < n:
        r = rng.random()
        if r < 0.35:
            mix.append(("one word", rng.choice(common + middling)))
        elif r < 0.7:
            mix.append(("two words", f"{rng.choice(common)} {rng.choice(middling)}"))
        else:
            word = rng.choice(middling)
            mix.append(("prefix as typed", word[: rng.randint(2, len(word))]))
    return mix[:n]


def time_each(fn, texts: list[tuple[str, str]]) -> dict[str, list[float]]:
    """Milliseconds per call by query kind and overall ('all'), wall time; the same keys
    with ' cpu' hold this process's CPU time, which other work on a busy machine
    inflates far less than wall time."""
    times: dict[str, list[float]] = {"all": [], "all cpu": []}
    fn(texts[0][1])  # warm the page cache and the statement cache
    for kind, text in texts:
        cpu, start = time.process_time(), time.perf_counter()
        fn(text)
        ms = (time.perf_counter() - start) * 1000
        cpu_ms = (time.process_time() - cpu) * 1000
        for key, value in ((kind, ms), ("all", ms), (f"{kind} cpu", cpu_ms), ("all cpu", cpu_ms)):
            times.setdefault(key, []).append(value)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages (default 10,000)")
    parser.add_argument("--sessions", type=int, default=500, help="sessions (default 500)")
    parser.add_argument("--searches", type=int, default=200, help="timed searches (default 200)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary home")
    args = parser.parse_args()

    from assistant.sessions import DB_NAME, SessionStore
    from assistant.sessions.schema import fts5_available

    print(machine_line())
    print(load_line())
    if not fts5_available():
        sys.exit("this Python's sqlite has no FTS5: only the LIKE fallback could be timed")
    papers = sample_papers()
    texts = queries(papers, args.searches, args.seed)
    with temp_home(keep=args.keep_home, prefix="assistant-session-search-") as home:
        built = build(home, papers, args.messages, args.sessions, args.seed)
        path = home / DB_NAME
        print(
            f"built {args.messages} messages in {args.sessions} sessions from "
            f"{len(papers)} sample papers in {built:.1f} s; sessions.db "
            f"{path.stat().st_size / 1e6:.1f} MB (with the index)"
        )
        with SessionStore.open(home) as store:
            fts = time_each(lambda q: store.list_sessions(search=q), texts)
            hits = time_each(lambda q: store.search_messages(q, limit=50), texts)
            found = {q: len(store.list_sessions(search=q)) for _, q in texts}
            store.fts = False  # the same store through its LIKE fallback
            like = time_each(lambda q: store.list_sessions(search=q), texts)
            found_like = {q: len(store.list_sessions(search=q)) for _, q in texts}
            store.fts = True
            # What the v3 upgrade does once: index every stored message and title.
            with store._transaction() as db:
                db.execute("UPDATE search_state SET value = 'stale' WHERE key = 'fts'")
        start = time.perf_counter()
        SessionStore.open(home).close()
        rebuild = time.perf_counter() - start
        add = {}
        for name, flag in (("with the index", True), ("without (LIKE fallback)", False)):
            with SessionStore.open(home, fts=flag) as store:
                session = store.create_session()
                start = time.perf_counter()
                for i in range(200):
                    store.add_message(session.id, "user", f"question {i} {texts[i % 50][1]}")
                add[name] = (time.perf_counter() - start) / 200 * 1000
        SessionStore.open(home).close()  # leave the index rebuilt

    kinds = [k for k in ("all", "one word", "two words", "prefix as typed") if k in fts]
    rows = []
    for kind in kinds:
        rows.append(
            [
                f"{kind} (n={len(fts[kind])})",
                f"{median(fts[kind]):.1f}",
                f"{percentile(fts[kind], 95):.1f}",
                f"{percentile(fts[kind + ' cpu'], 95):.1f}",
                f"{median(hits[kind]):.1f}",
                f"{percentile(hits[kind], 95):.1f}",
                f"{median(like[kind]):.1f}",
                f"{percentile(like[kind], 95):.1f}",
                f"{percentile(like[kind + ' cpu'], 95):.1f}",
            ]
        )
    for kind in ("rare term", "frequent term"):
        q = next(t for k, t in texts if k == kind)
        rows.append(
            [
                f"{kind} '{q}' ({found[q]} / {found_like[q]} sessions)",
                f"{fts[kind][0]:.1f}",
                "",
                f"{fts[kind + ' cpu'][0]:.1f}",
                f"{hits[kind][0]:.1f}",
                "",
                f"{like[kind][0]:.1f}",
                "",
                f"{like[kind + ' cpu'][0]:.1f}",
            ]
        )
    print_table(
        f"session search over {args.messages} messages, {args.searches} searches (ms)",
        [
            "query",
            "FTS5 median",
            "FTS5 p95",
            "(cpu p95)",
            "hits median",
            "hits p95",
            "LIKE median",
            "LIKE p95",
            "(cpu p95)",
        ],
        rows,
    )
    prefix_g = [found[q] for k, q in texts if k == "prefix as typed"]
    print(
        "\nFTS5 = list_sessions(search=...) as the chat's sidebar runs it (every matching "
        "session, ranked, with snippets); hits = search_messages(limit=50); LIKE = the "
        "old substring scan (the no-FTS5 fallback). Sessions found differ: FTS5 matches "
        "words and word prefixes in one message or title, LIKE substrings anywhere in a "
        f"session. Prefix queries matched up to {max(prefix_g)} sessions."
    )
    print(f"whole-index build for the {args.messages} messages (v3 upgrade): {rebuild:.2f} s")
    print(
        "add_message: "
        + ", ".join(f"{name} {ms:.2f} ms" for name, ms in add.items())
        + f" (each a commit; spread of FTS5 list times {spread(fts['all'], '{:.1f}')} ms)"
    )
    print(load_line())


if __name__ == "__main__":
    main()
