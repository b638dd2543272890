"""Weekly digests: the whole digest against the real local model (SmolLM2 through
llama.cpp's server); windows, topics, files and prompt budgets, where the model's
words are not what is tested, against the fake endpoint (tests/fakeserver.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest

from assistant.digest import build_digest, cluster, parse_week, resolve_window
from assistant.errors import UsageError
from assistant.ingest import ingest
from assistant.llm import ModelClient
from assistant.store import Library
from assistant.tokens import count_message_tokens

from .cli_runner import run_assistant
from .conftest import embed_model_dir, make_settings
from .fakeserver import FakeServer


@pytest.fixture(scope="module")
def digest_home(sample_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("digest-home")
    shutil.copytree(sample_home / "chroma", home / "chroma")
    return home


def _cli(home: Path, server: str, *args: str) -> subprocess.CompletedProcess:
    """`assistant digest ARGS` (in this process), against the endpoint at `server`."""
    env = {
        **os.environ,
        "ASSISTANT_HOME": str(home),
        "OPENAI_BASE_URL": server,
        "ASSISTANT_MODEL": "smollm2",
        "ASSISTANT_CONTEXT_WINDOW": "4096",
        "ASSISTANT_TIMEOUT": "300",
    }
    if embed_model_dir():
        env["ASSISTANT_EMBED_MODEL_DIR"] = str(embed_model_dir())
    return run_assistant(["digest", *args], env=env)


def test_digest_of_2024_groups_every_paper_once_and_cites_only_the_window(
    digest_home: Path, llama_server: str
):
    from assistant.digest.check import invented_titles
    from assistant.digest.naming import valid_name
    from assistant.digest.score import score_digest
    from assistant.digest.table import has_figure

    out = digest_home / "d2024.json"
    proc = _cli(
        digest_home,
        llama_server,
        "--since",
        "2024-01-01",
        "--until",
        "2024-12-31",
        "--format",
        "json",
        "--out",
        str(out),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert data["written"] == str(out)
    assert json.loads(out.read_text())["themes"] == data["themes"]

    papers = {p["paper_id"]: p for p in data["papers"]}
    assert len(papers) == len(data["papers"]) > 10
    assert all("2024-01-01" <= p["published"] <= "2024-12-31" for p in data["papers"])
    grouped = [pid for theme in data["themes"] for pid in theme["paper_ids"]]
    assert sorted(grouped) == sorted(papers)  # every paper in exactly one theme
    rows = [row["paper_id"] for theme in data["themes"] for row in theme["table"]]
    assert sorted(rows) == sorted(papers)  # ... and in exactly one table row
    named = [t for t in data["themes"] if not t["other"]]
    assert len(named) >= 2 and all(
        t["name"] == "Other papers" for t in data["themes"] if t["other"]
    )
    assert -1 <= data["silhouette"] <= 1 and all(-1 <= t["silhouette"] <= 1 for t in named)
    # "For you" names each theme as the overview does (picked after the model named them).
    central = [r for p in data["for_you"] for r in p["reasons"] if "most central paper of" in r]
    names = {t["name"] for t in named}
    assert central and all(re.search(r"of '(.+)' \(", r)[1] in names for r in central)

    markdown = data["markdown"]
    assert "?]" not in markdown
    plain = re.sub(r"\\(.)", r"\1", markdown)  # Markdown's backslash escapes undone
    titles = [p["title"] for p in data["papers"]]
    for theme in named:
        members = [_as_paper(papers[pid]) for pid in theme["paper_ids"]]
        assert valid_name(theme["name"], members) == (True, ""), theme["name"]
        assert set(theme["citations"]) <= set(theme["paper_ids"])
        assert f"## {named.index(theme) + 1}. {theme['name']}" in plain
        kept = {s["text"] for s in theme["prose"] if s["kept"]}
        for sentence in theme["prose"]:
            assert sentence["kept"] == (sentence["reason"] is None)
            if sentence["kept"]:
                # shown with its marks before the final stop: "... are [2]."
                assert sentence["text"].rstrip(".!?") in plain and sentence["citations"]
                assert not invented_titles(sentence["text"], titles)
            elif not sentence["reason"].startswith("repeats"):
                assert sentence["text"] not in kept  # (a cut-off copy may prefix a kept one)
    for theme in data["themes"]:
        for row in theme["table"]:
            abstract = papers[row["paper_id"]]["abstract"]
            for role in ("problem", "approach", "result"):
                if row[role]:
                    assert abstract[row[role]["start"] : row[role]["end"]] == row[role]["text"]
            if has_figure(abstract):
                assert row["result"] and has_figure(row["result"]["text"])
    # The numbered references are exactly the window's papers, and every citation resolves.
    refs = re.findall(r"^(\d+)\. (.+) \(", markdown.split("## References")[1], re.MULTILINE)
    assert [re.sub(r"\\(.)", r"\1", title) for _, title in refs] == titles
    for number in re.findall(r"\[(\d+)\]", markdown.split("## References")[0]):
        assert 1 <= int(number) <= len(refs)

    scores = score_digest(data)  # what `assistant eval digest` reports, from the JSON alone
    assert scores["names_valid"] == 1.0 and scores["invented_titles"] == 0
    assert scores["unsupported_marks"] == 0 and scores["rows_once"]
    assert scores["result_cells"] == 1.0 and scores["cell_offsets_exact"]
    assert scores["prose_supported"] is None or scores["prose_supported"] >= 0.95


def _as_paper(row: dict):
    from assistant.digest import DigestPaper

    return DigestPaper(row["paper_id"], row["title"], row["abstract"], None, None, None, 0, None)


def test_empty_window_says_so_and_writes_nothing(digest_home: Path, fake_llm: FakeServer):
    proc = _cli(digest_home, fake_llm.url, "--week", "2031-W02")
    assert proc.returncode == 0, proc.stderr
    assert "No papers in this window (2031-01-06 to 2031-01-12" in proc.stdout
    assert "264 papers" in proc.stdout
    assert not (digest_home / "digests").exists()
    assert fake_llm.chat_requests == []  # nothing to write about, so the model is not asked


def test_topic_and_no_overwrite(digest_home: Path, fake_llm: FakeServer):
    out = digest_home / "topic.md"
    args = (
        "--since",
        "2024-01-01",
        "--until",
        "2024-12-31",
        "--topic",
        "scaling laws",
        "--out",
        str(out),
        "--json",
    )
    proc = _cli(digest_home, fake_llm.url, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert 0 < len(data["papers"]) < 29  # fewer than the whole 2024 window
    assert any("Scaling" in p["title"] for p in data["papers"])
    first = out.read_text()
    assert first.startswith("# Paper digest: 2024-01-01 to 2024-12-31 — scaling laws")

    calls = len(fake_llm.chat_requests)
    again = _cli(digest_home, fake_llm.url, *args)
    assert len(fake_llm.chat_requests) == calls  # refused before any model call
    assert again.returncode == 2
    assert "--force" in again.stderr and "Traceback" not in again.stderr
    assert out.read_text() == first


def test_500_papers_fit_a_small_context_window(tmp_path: Path, embedder, fake_llm: FakeServer):
    from .recorded_vectors import SYNTHETIC_VECTORS, RecordedEmbedder, write_synthetic

    data = write_synthetic(tmp_path / "synthetic.jsonl")  # one sentence each: about budgets
    recorded = RecordedEmbedder(embedder, SYNTHETIC_VECTORS)
    window = 1536
    settings = make_settings(
        tmp_path / "home", base_url=fake_llm.url, model="smollm2", context_window=window
    )
    library = Library.open(settings)
    report = ingest([data], settings, library=library, embedder=recorded)
    assert report.total_papers == 500 and recorded.misses == 0
    digest = build_digest(
        settings,
        library,
        recorded,
        ModelClient(settings),
        date(2030, 3, 1),
        date(2030, 3, 7),
        section_tokens=24,
    )
    assert len(digest.papers) == 500
    assert sum(len(t.papers) for t in digest.themes) == 500
    # Every prompt as the server received it, with the room it asked for the reply, fits.
    sent = [r.body for r in fake_llm.chat_requests]
    sizes = [count_message_tokens(body["messages"]) + body.get("max_tokens", 0) for body in sent]
    assert sizes and max(sizes) <= window
    # Calls grow with themes and batches: far fewer than one per paper.
    assert len(sizes) == digest.model_calls <= 2 * len(digest.named) < 500 // 2
    assert digest.max_prompt_tokens + 24 <= window


def test_windows_and_clustering_rules():
    assert parse_week("2025-W45") == (date(2025, 11, 3), date(2025, 11, 9))
    assert resolve_window(None, None, date(2025, 1, 7)) == (date(2025, 1, 1), date(2025, 1, 7))
    with pytest.raises(UsageError):
        parse_week("2025-45")
    with pytest.raises(UsageError):
        resolve_window("2025-W45", date(2025, 1, 1), None)
    import numpy as np

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))
    points = np.concatenate([c + 0.05 * rng.normal(size=(6, 16)) for c in centres])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    labels = cluster(points)
    assert len(set(labels)) == 3  # chosen from the data
    assert labels == sorted(labels)  # groups of six, in order


# -- the steps without a model --------------------------------------------------------


def _sample_papers() -> list:
    """The bundled sample's papers as digest papers (no store, no vectors)."""
    from assistant.digest import DigestPaper
    from assistant.ingest import bundled_corpus, expand_paths, merge_records
    from assistant.readers import read_file

    read = []
    for path in expand_paths([bundled_corpus()]):
        read.extend(read_file(path).papers)
    return [
        DigestPaper(
            pid,
            m.paper.title,
            m.paper.abstract,
            m.paper.published,
            None,
            m.paper.url,
            m.paper.upvotes or 0,
            None,
        )
        for pid, m in sorted(merge_records(read).items())
    ]


def _paper(title: str, abstract: str, vector=None):
    from assistant.digest import DigestPaper

    return DigestPaper(
        title.lower().replace(" ", "-")[:40],
        title,
        abstract,
        date(2024, 5, 1),
        None,
        None,
        0,
        vector,
    )


def test_theme_names_are_distinctive_phrases_of_the_themes_own_papers():
    from assistant.digest import Theme
    from assistant.digest.naming import accept_model_name, name_themes, valid_name

    decoding = [
        _paper(
            "Speculative Decoding with Draft Trees",
            "Speculative decoding speeds up large language model inference with a draft "
            "model. We propose draft trees that raise the acceptance rate to 3.1 tokens.",
        ),
        _paper(
            "Faster Speculative Decoding for Chat",
            "We study speculative decoding for chat assistants and reduce latency by 2x "
            "with a smaller draft model.",
        ),
        _paper(
            "Lossless Speculative Decoding at Scale",
            "Speculative decoding is lossless; we scale it to 70B models.",
        ),
    ]
    splatting = [
        _paper(
            "City-Scale Gaussian Splatting",
            "Gaussian splatting renders large scenes; we partition a city into blocks.",
        ),
        _paper(
            "Dynamic Gaussian Splatting for Video",
            "We extend Gaussian splatting to dynamic scenes captured on video.",
        ),
    ]
    themes = [Theme("", decoding), Theme("", splatting)]
    name_themes(themes)
    assert themes[0].name.lower().startswith("speculative decoding")
    assert themes[1].name.lower().startswith("gaussian splatting")
    for theme in themes:
        assert valid_name(theme.name, theme.papers) == (True, "")
        assert theme.name_source == "key phrases"

    for bad, why in (
        ("Themes: [1] AdAdaGrad", "brackets or numbering"),
        ("1. Speculative decoding", "brackets or numbering"),
        ("Lambda-Limb Regression", "words not in the theme's papers"),
        (
            "Speculative decoding of draft trees for large language model chat assistants",
            "longer than",
        ),
    ):
        ok, reason = valid_name(bad, decoding)
        assert not ok and why in reason, (bad, reason)
    accept_model_name(themes[0], "Theme: [1] Fast Adaptive Adversarial Prompting", set())
    assert themes[0].name_source == "key phrases"  # the model's proposal was refused
    accept_model_name(themes[0], '"Draft models for speculative decoding."', set())
    assert (themes[0].name, themes[0].name_source) == (
        "Draft models for speculative decoding",
        "model",
    )


def test_table_cells_are_verbatim_trimmed_substrings_with_their_figures():
    from assistant.digest.table import CELL_CHARS, has_figure, row_for

    papers = _sample_papers()
    assert len(papers) == 264
    figured = 0
    for paper in papers:
        row = row_for(paper)
        if has_figure(paper.abstract):
            figured += 1
            result = row.cells["result"]
            assert result is not None and has_figure(result.text), paper.title
        starts = [c.start for c in row.cells.values() if c]
        assert len(starts) == len(set(starts))  # one sentence per role
        for role, cell in row.cells.items():
            if cell is None:
                continue
            assert paper.abstract[cell.start : cell.end] == cell.text
            assert len(cell.text) <= CELL_CHARS[role] + 40
            a, b = cell.sentence
            assert a <= cell.start < cell.end <= b
            # cut at word boundaries only, and shown with an ellipsis where cut
            assert cell.start == a or not paper.abstract[cell.start - 1].isalnum()
            assert cell.end == len(paper.abstract) or not paper.abstract[cell.end].isalnum()
            assert cell.shown.endswith(" …") == (cell.end < b)
    assert figured > 100  # the sample's abstracts state figures often

    metashift = next(p for p in papers if p.title.startswith("MetaShift"))
    cells = row_for(metashift).cells
    assert "12,868" in cells["result"].text  # figures copied exactly
    assert "limited" in cells["problem"].text or "lack" in cells["problem"].text


def test_prose_sentences_are_kept_only_when_supported_and_about_window_papers():
    from assistant.digest.check import check_prose

    a = _paper(
        "Speculative Decoding with Draft Trees",
        "Speculative decoding speeds up language model inference with a draft model. "
        "Draft trees raise the acceptance rate to 3.1 tokens per step.",
    )
    b = _paper(
        "City-Scale Gaussian Splatting",
        "Gaussian splatting renders large scenes; we partition a city into blocks.",
    )
    raw = (
        "Draft trees raise the acceptance rate of speculative decoding to 3.1 tokens [1]. "
        "Both papers reduce the memory of image classifiers by 45% [2]. "
        "LLM: Lambda-Limb Regression (2019) speeds up decoding with draft trees [1]. "
        "Draft trees raise the acceptance rate of speculative decoding to 3.1 tokens [1]. "
        "Gaussian splatting renders city scenes in blocks [2][7]."
    )
    earlier: list = []
    checked = check_prose(raw, {1: a, 2: b}, [a.title, b.title], earlier)
    kept = [s for s in checked if not s.reason]
    reasons = [s.reason for s in checked if s.reason]
    assert [s.text for s in kept] == [
        "Draft trees raise the acceptance rate of speculative decoding to 3.1 tokens.",
        "Gaussian splatting renders city scenes in blocks.",
    ]
    assert kept[0].cited == [a.paper_id] and kept[1].cited == [b.paper_id]  # [7] dropped
    assert any(r.startswith("not supported") for r in reasons)
    assert any(
        r.startswith("names a paper not in the window: LLM: Lambda-Limb Regression")
        for r in reasons
    )
    assert "repeats an earlier sentence" in reasons
    assert len(earlier) == 2


def test_prose_that_speaks_as_the_authors_is_removed():
    from assistant.digest.check import check_prose

    a = _paper(
        "Scaling Law Crossover",
        "We identify a new phenomenon termed scaling law crossover, where two scaling curves "
        "intersect at a certain scale, so methods effective at smaller scales may not generalize.",
    )
    raw = (
        "Two scaling curves intersect at a certain scale, termed scaling law crossover [1]. "
        "Instead of regularization, we use a new phenomenon termed scaling law crossover [1]."
    )
    checked = check_prose(raw, {1: a}, [a.title], [])
    assert [s.reason for s in checked] == ["", "speaks as a paper's authors ('we', 'our')"]

    cut = check_prose(
        "Two scaling curves intersect at a certain scale, and methods are [1].",
        {1: a},
        [a.title],
        [],
    )
    assert [s.reason for s in cut] == ["cut off mid-sentence"]

    reversed_ = check_prose(
        "Two scaling curves intersect at a certain scale, so methods effective at smaller "
        "scales generalize to larger ones [1].",
        {1: a},
        [a.title],
        [],
    )
    assert [s.reason for s in reversed_] == [
        "reverses the abstract it cites (a 'not' added or dropped)"
    ]


def test_papers_far_from_every_theme_go_to_other_papers():
    import numpy as np

    from assistant.digest.themes import group

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(3, 32))
    vectors = [c + 0.15 * rng.normal(size=32) for c in centres for _ in range(5)]
    vectors += list(rng.normal(size=(2, 32)))  # two papers like no other
    vectors = [v / np.linalg.norm(v) for v in vectors]
    papers = [_paper(f"Paper {i}", "An abstract.", vector=v) for i, v in enumerate(vectors)]
    themes, window = group(papers)
    named = [t for t in themes if not t.other]
    assert [len(t.papers) for t in named] == [5, 5, 5]
    assert themes[-1].other and {p.title for p in themes[-1].papers} == {"Paper 15", "Paper 16"}
    assert window is not None and window > 0.5
    assert all(t.silhouette is not None and t.silhouette > 0.5 for t in named)
    assert themes[-1].silhouette is None


def test_eval_digest_scores_by_the_rules_and_refuses_a_file_that_is_no_digest(tmp_path: Path):
    from assistant.digest import Digest, ProseSentence, Theme
    from assistant.digest.score import score_digest
    from assistant.digest.table import build_tables

    papers = [p for p in _sample_papers() if p.title.startswith(("MetaShift", "LoRA-GA"))][:2]
    assert len(papers) == 2
    good = Theme("Natural images", [papers[0]], key_phrases=["natural images"])
    bad = Theme("Themes: [1] LoRA-GA", [papers[1]])
    build_tables([good, bad])
    good.prose = [
        ProseSentence(
            "MetaShift is a collection of 12,868 sets of natural images across 410 classes.",
            [papers[0].paper_id],
        ),
        ProseSentence("Removed.", [], reason="too short to check"),
    ]
    bad.prose = [
        ProseSentence(
            "LLM: Lambda-Limb Regression (2019) beats every model by 99%.", [papers[1].paper_id]
        )
    ]
    digest = Digest(
        date(2024, 1, 1),
        date(2024, 1, 7),
        "published",
        [good, bad],
        papers,
        date(2023, 12, 25),
        date(2023, 12, 31),
        0,
        264,
    )
    scores = score_digest(json.loads(json.dumps(digest.to_dict())))
    assert scores["names_valid"] == 0.5
    assert [n["valid"] for n in scores["names"]] == [True, False]
    assert scores["prose_sentences"] == 2 and scores["prose_supported"] == 0.5
    assert scores["prose_removed"] == 1
    assert scores["invented_titles"] == 1 and scores["invented"] == ["LLM: Lambda-Limb Regression"]
    assert scores["rows_once"] and scores["cell_offsets_exact"]
    assert scores["result_cells"] == 1.0  # both abstracts state figures, both rows carry one

    junk = tmp_path / "notes.json"
    junk.write_text("{not json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    proc = run_assistant(
        ["eval", "digest", str(junk)], env={**env, "ASSISTANT_HOME": str(tmp_path / "home")}
    )
    assert proc.returncode == 2 and "not a digest JSON file" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_name_never_ends_on_a_lone_adjective_or_is_a_bare_natural_language():
    from assistant.digest.naming import phrase_name

    # Seen on the real 2025 week: "Motion and temporal", and "Natural language" for a
    # theme of document retrieval and extraction papers.
    assert phrase_name(["motion", "temporal", "pose"], set()) == "Motion and pose"
    assert phrase_name(["clinical", "medical", "patient"], set()) == "Clinical and medical"
    named = phrase_name(["natural language", "documents", "extraction"], set(), {"language"})
    assert named == "Documents and extraction"


def test_digest_prose_mixing_two_papers_under_one_citation_is_removed():
    from assistant.digest import DigestPaper
    from assistant.digest.check import check_prose

    dub = DigestPaper(
        "d",
        "EmoDubber: Towards High Quality and Emotion Controllable Movie Dubbing",
        "We propose EmoDubber, an emotion-controllable dubbing architecture that lets users "
        "specify emotion type and intensity while keeping high-quality lip sync.",
        date(2024, 12, 1),
        None,
        None,
        0,
        None,
    )
    aac = DigestPaper(
        "a",
        "SLAM-AAC: Enhancing Audio Captioning with Paraphrasing Augmentation",
        "We propose SLAM-AAC to enhance automated audio captioning with paraphrasing "
        "augmentation and CLAP-Refine through LLMs.",
        date(2024, 12, 2),
        None,
        None,
        0,
        None,
    )
    # SmolLM2 on the sample's 2024 window: captioning (SLAM-AAC) credited to EmoDubber.
    raw = (
        "The proposed method enhances the quality of audio captioning by allowing users to "
        "specify emotion type and intensity while ensuring high-quality lip sync [1]."
    )
    checked = check_prose(raw, {1: dub, 2: aac}, [dub.title, aac.title], [])
    assert [s.reason for s in checked] == ["mixes another paper's content into the one it cites"]
