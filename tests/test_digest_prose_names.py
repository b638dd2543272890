"""A prose sentence keeps a subject: a leading citation marker or "This paper" becomes
the paper's short name (the marker itself moves to the sentence's end when shown)."""

from __future__ import annotations

from assistant.digest import DigestPaper
from assistant.digest.check import check_prose, name_leading_markers


def _paper(pid: str, title: str, abstract: str) -> DigestPaper:
    return DigestPaper(pid, title, abstract, None, None, None, 0, None)


def test_a_sentence_that_begins_with_a_marker_gets_the_papers_short_name():
    cfg = _paper(
        "p1",
        "CFG++: Manifold-constrained Classifier Free Guidance for Diffusion Models",
        "Classifier-free guidance pushes samples off the data manifold. CFG++ revisits the "
        "CFG update rule and keeps samples on the manifold, improving FID by 1.2 points.",
    )
    pave = _paper(
        "p2",
        "PAVE: An End-to-End Dataset for Production Autonomous Vehicle Evaluation",
        "Autonomous driving lacks production evaluation data. We release PAVE, an end-to-end "
        "dataset of 100 hours of driving for production autonomous vehicle evaluation.",
    )
    local = {1: cfg, 2: pave}
    assert name_leading_markers("[1] revisits the CFG update rule.", local) == (
        "CFG++ [1] revisits the CFG update rule."
    )
    raw = (
        "[1] revisits the CFG update rule and keeps samples on the manifold. "
        "This paper lacks nothing: it offers 100 hours of driving data where production "
        "evaluation data was lacking [2]."
    )
    kept = [s for s in check_prose(raw, local, [cfg.title, pave.title], []) if not s.reason]
    texts = [s.text for s in kept]
    assert texts[0].startswith("CFG++ revisits the CFG update rule"), texts
    assert texts[1].startswith("PAVE lacks nothing: it offers 100 hours"), texts
    assert [s.cited for s in kept] == [["p1"], ["p2"]]


def test_a_prompt_label_and_a_copy_cut_before_its_end_are_not_shown():
    stewardship = _paper(
        "p1",
        "The Evolving Ethics of Medical Data Stewardship",
        "As healthcare moves toward a data-driven future, we must define reformed data "
        "stewardship that prioritizes patients' interests by proactively sharing data.",
    )
    other = _paper("p2", "The Last Vote", "We present a framework for AI risks to democracy.")
    # SmolLM2 on the real 2025 week: the prompt's "The solution:" label, and the abstract's
    # words copied up to "by proactively" with a full stop added.
    raw = (
        "The solution: data stewardship prioritizes patients' interests by proactively [1]. "
        "The problem: healthcare moves toward a data-driven future [1]."
    )
    checked = check_prose(raw, {1: stewardship, 2: other}, [stewardship.title, other.title], [])
    assert all(s.reason for s in checked), [(s.text, s.reason) for s in checked]
