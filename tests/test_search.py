"""Hybrid search over the real ingested sample: quality, grouping and filters."""

from __future__ import annotations

import re
from datetime import date

import pytest

from assistant.retrieve import Filters

# Questions phrased without the words of the paper's title (checked below).
QUESTIONS = [
    (
        "Which approach fine-tunes networks on IoT microcontrollers that have only a few "
        "hundred kilobytes of RAM?",
        "On-Device Training Under 256KB Memory",
    ),
    (
        "How can a language model resolve disagreements between what the prompt says and what it "
        "memorised, using Jensen-Shannon divergence?",
        "AdaCAD: Adaptively Decoding to Balance Conflicts between Contextual and Parametric "
        "Knowledge",
    ),
    (
        "Reducing optimizer memory by quantising the subspace used for gradient compression to 4 "
        "bits",
        "Q-GaLore: Quantized GaLore with INT4 Projection and Layer-Adaptive Low-Rank Gradients",
    ),
    (
        "Adding source URLs such as wikipedia during pretraining, then a cooldown phase",
        "Metadata Conditioning Accelerates Language Model Pre-training",
    ),
    (
        "a single-controller versus multi-controller dataflow for reinforcement learning from "
        "human preferences",
        "HybridFlow: A Flexible and Efficient RLHF Framework",
    ),
    (
        "Attacks that hide triggers in step-by-step reasoning demonstrations of commercial APIs",
        "BadChain: Backdoor Chain-of-Thought Prompting for Large Language Models",
    ),
    (
        "metallicity gradients and kinematics of the thin and thick Milky Way populations",
        "Mapping the Chemo-dynamics of the Galactic disk using the LAMOST and APOGEE red clump "
        "stars",
    ),
    (
        "translating between German and a regional dialect with little data",
        "Investigating Neural Machine Translation for Low-Resource Languages: Using Bavarian as a "
        "Case Study",
    ),
    (
        "describing sounds in natural language with an EAT encoder and LoRA fine-tuning",
        "SLAM-AAC: Enhancing Audio Captioning with Paraphrasing Augmentation and CLAP-Refine "
        "through LLMs",
    ),
    (
        "finding copied text with a focal loss and evolutionary optimisation",
        "A Novel Plagiarism Detection Approach Combining BERT-based Word Embedding, "
        "Attention-based LSTMs and an Improved Differential Evolution Algorithm",
    ),
    (
        "adjusting the CFG scale per prompt in text-to-image models, scored by CLIP and a "
        "discriminator",
        "Dynamic Classifier-Free Diffusion Guidance via Online Feedback",
    ),
    (
        "recovering quickly from accelerator failures when pretraining across a hundred thousand "
        "chips",
        "ElasWave: An Elastic-Native System for Scalable Hybrid-Parallel Training",
    ),
    (
        "a benchmark of 12,868 image sets built from Visual Genome to study robustness",
        "MetaShift: A Dataset of Datasets for Evaluating Contextual Distribution Shifts and "
        "Training Conflicts",
    ),
]

STOP = {
    "a",
    "an",
    "the",
    "of",
    "for",
    "and",
    "with",
    "to",
    "in",
    "on",
    "using",
    "as",
    "via",
    "by",
    "through",
    "under",
    "between",
    "from",
    "is",
    "how",
    "which",
    "what",
    "can",
}


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP and len(w) > 2}


def test_questions_do_not_reuse_title_words():
    for question, title in QUESTIONS:
        shared = _content_words(question) & _content_words(title)
        assert not shared, (question, shared)


@pytest.mark.parametrize("question,title", QUESTIONS, ids=[t[:30] for _, t in QUESTIONS])
def test_paraphrased_question_finds_its_paper_in_top_5(sample_retriever, question, title):
    hits = sample_retriever.search(question, k=5)
    assert title in [h.title for h in hits], [h.title for h in hits]


def test_each_paper_appears_once_with_its_best_passage(sample_retriever):
    hits = sample_retriever.search("memory efficient training of large language models", k=20)
    assert len(hits) == 20
    assert len({h.paper_id for h in hits}) == 20
    assert [h.rank for h in hits] == list(range(1, 21))
    assert all(hits[i].score >= hits[i + 1].score for i in range(19))
    for h in hits:
        assert h.passage and not h.passage.startswith(h.title)
        assert h.similarity is not None and -1.0 <= h.similarity <= 1.0


def test_date_filters(sample_retriever):
    since, until = date(2024, 1, 1), date(2024, 12, 31)
    hits = sample_retriever.search("language models", k=30, filters=Filters(since, until))
    assert hits
    assert all(h.published and since <= h.published <= until for h in hits)
    none = sample_retriever.search("language models", k=5, filters=Filters(since=date(2099, 1, 1)))
    assert none == []


def test_title_and_author_keyword_filters(sample_retriever):
    hits = sample_retriever.search("optimizer", k=10, filters=Filters(title="adamp"))
    assert [h.title[:5] for h in hits] == ["AdamP"]
    hits = sample_retriever.search("training", k=10, filters=Filters(author="naver"))
    assert hits and all(h.paper.get("organisation", "").startswith("naver-ai") for h in hits)


def test_keyword_side_finds_exact_rare_terms(sample_retriever):
    """A token the embedder does not know well (a figure) still ranks through BM25."""
    keyword = sample_retriever._keyword
    best_paper, _score = keyword.search("12,868", 3)[0]
    assert sample_retriever.papers[best_paper]["title"].startswith("MetaShift")
    hits = [
        h for h in sample_retriever.search("12,868 sets", k=5) if h.title.startswith("MetaShift")
    ]
    assert hits and "12,868" in hits[0].passage  # the passage chosen is the one that says it


def test_a_paper_named_by_the_query_comes_first(sample_retriever):
    """Bare names and questions about a name find the paper of that name before the
    papers that build on it (Q-GaLore, Natural GaLore mention GaLore in their titles)."""
    for query in (
        "GaLore",
        "What is GaLore?",
        "What does CSKV do?",
        "What is Sophia?",
        "Summarize Q-GaLore.",
    ):
        hits = sample_retriever.search(query, k=3)
        name = (
            query.removeprefix("What is ")
            .removeprefix("What does ")
            .removeprefix("Summarize ")
            .split(" do?")[0]
            .rstrip("?.")
        )
        assert hits[0].title.startswith(name + ":"), (query, [h.title for h in hits])
        assert hits[0].name_match and not hits[0].weak
    assert not any(
        h.name_match
        for h in sample_retriever.search("memory efficient training of large language models", k=10)
    )


def test_similarity_is_the_best_passage_cosine_and_weak_matches_are_marked(sample_retriever):
    import numpy as np

    from assistant.answer import ABSTAIN_SIMILARITY

    query = "translating between German and a regional dialect with little data"
    hits = sample_retriever.search(query, k=5)
    assert hits[0].title.startswith("Investigating Neural Machine Translation")
    assert not hits[0].weak and hits[0].similarity >= ABSTAIN_SIMILARITY
    chunks = sample_retriever.library.chunks().get(
        where={"paper_id": hits[0].paper_id}, include=["embeddings"]
    )
    vector = sample_retriever.embedder.embed([query])[0]
    best = max(float(np.dot(np.asarray(e, dtype=np.float32), vector)) for e in chunks["embeddings"])
    assert abs(hits[0].similarity - best) < 1e-5
    unrelated = sample_retriever.search("speculative decoding", k=5)
    assert unrelated and all(h.weak for h in unrelated)
    assert all(h.weak == (h.similarity < ABSTAIN_SIMILARITY) for h in unrelated + hits)


def test_search_command_shows_similarity_and_marks_weak_matches(sample_home, tmp_path):
    """`assistant search`: a similarity column, weak rows marked; --json keeps the fused score."""
    import json
    import shutil

    from .test_cli import run

    home = tmp_path / "home"
    shutil.copytree(sample_home / "chroma", home / "chroma")
    proc = run("search", "speculative decoding", "--k", "3", home=home, check_rc=0)
    header = proc.stdout.splitlines()[1]
    assert "similarity" in header and "score" not in header
    assert proc.stdout.count("weak") >= 4  # three rows and the note
    assert "below 0.36" in proc.stdout
    proc = run(
        "search",
        "translating German into a regional dialect with little data",
        "--k",
        "3",
        home=home,
        check_rc=0,
    )
    first_row = proc.stdout.split("├")[0]
    assert "Investigating" in first_row and "weak" not in first_row
    proc = run("search", "speculative decoding", "--k", "3", "--json", home=home, check_rc=0)
    results = json.loads(proc.stdout)["results"]
    assert [r["rank"] for r in results] == [1, 2, 3]
    assert all(r["weak"] and 0 < r["similarity"] < 0.36 and 0 < r["score"] < 0.1 for r in results)


def test_filtered_search_sees_papers_added_since_the_last_query(sample_copy, embedder, tmp_path):
    """The papers a filter admits are kept between queries, but not across an ingest."""
    import json

    from assistant.ingest import ingest
    from assistant.retrieve import Retriever
    from assistant.store import Library

    from .conftest import make_settings

    settings = make_settings(sample_copy)
    retriever = Retriever(Library.open(settings), embedder, settings)
    window = Filters(since=date(2031, 1, 1))
    assert retriever.search("zeolite catalysts", k=5, filters=window) == []
    new = tmp_path / "new.jsonl"
    new.write_text(
        json.dumps(
            {
                "title": "Zeolite Catalysts Screened by Graph Networks",
                "abstract": "We screen zeolite catalysts with graph neural networks and report "
                "a 12-fold speed-up over density functional theory.",
                "published": "2031-02-03",
            }
        )
        + "\n"
    )
    ingest([new], settings, library=retriever.library, embedder=embedder)
    hits = retriever.search("zeolite catalysts", k=5, filters=Filters(since=date(2031, 1, 1)))
    assert [h.title for h in hits] == ["Zeolite Catalysts Screened by Graph Networks"]
