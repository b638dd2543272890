"""The deterministic citation checks, on hand-made answers with known verdicts."""

from __future__ import annotations

from datetime import date

from assistant.answer import Source, build_messages, finish
from assistant.citations import SourceText, check, says_no_answer
from assistant.text import numbers, split_sentences
from assistant.tokens import count_message_tokens

SOURCES = [
    SourceText(
        1,
        "MetaShift: A Dataset of Datasets",
        "We present MetaShift, a collection of 12,868 sets of natural images across 410 "
        "classes, built from Visual Genome annotations.",
    ),
    SourceText(
        2,
        "AdaCAD: Adaptively Decoding to Balance Conflicts",
        "AdaCAD obtains average accuracy gains of 14.21% (absolute) over a static "
        "contrastive baseline on question answering.",
    ),
]


def test_unknown_source_numbers_are_dropped_and_counted():
    checked = check(
        "MetaShift holds 12,868 sets of natural images [1][7]. It uses Visual Genome [9].", SOURCES
    )
    assert checked.dropped_citations == 2
    assert checked.cited_numbers == [1]
    assert "[7]" not in checked.text and "[9]" not in checked.text


def test_uncited_sentence_is_attributed_to_the_supporting_source():
    checked = check(
        "AdaCAD reports average accuracy gains of 14.21% over a static contrastive baseline.",
        SOURCES,
    )
    sentence = checked.sentences[0]
    assert sentence.attributed and sentence.cited == [2]
    assert sentence.supported == {2: True}
    assert checked.text.endswith("[2]")


def test_sentence_without_support_stays_uncited():
    checked = check("Reinforcement learning agents play chess at grandmaster level.", SOURCES)
    assert checked.sentences[0].cited == []
    assert checked.cited_numbers == []


def test_citation_the_passage_does_not_support_is_marked():
    checked = check("AdaCAD improves accuracy by 14.21% [1].", SOURCES)
    assert checked.sentences[0].supported == {1: False}
    assert "[1?]" in checked.text
    assert not checked.supported(1)


def test_figures_in_no_source_are_flagged():
    checked = check("MetaShift contains 20 sets of natural images [1].", SOURCES)
    assert checked.unknown_numbers == ["20"]
    assert checked.sentences[0].supported == {1: False}  # a wrong figure is not support


def test_marker_forms_and_ranges():
    checked = check(
        "MetaShift has 410 classes of natural images [Source 1]. AdaCAD gains "
        "14.21% accuracy [1, 2]. Both [1-2].",
        SOURCES,
    )
    assert checked.sentences[0].cited == [1]
    assert checked.sentences[1].cited == [1, 2]
    assert checked.dropped_citations == 0


def test_sentence_splitting_keeps_abbreviations():
    assert split_sentences("It uses e.g. Visual Genome. Then it ends.") == [
        "It uses e.g. Visual Genome.",
        "Then it ends.",
    ]
    assert numbers("gains of 14.21% and 12,868 sets, 2.50x faster in 2024, 3 tasks") == {
        "14.21",
        "12868",
        "2.5",
        "2024",
    }


def test_model_refusals_are_recognised():
    assert says_no_answer("The sources do not answer this question.")
    assert says_no_answer("The provided information does not mention chess engines at all.")
    assert says_no_answer("I cannot answer this from the sources.")
    assert not says_no_answer("MetaShift contains 12,868 sets of natural images [1].")


def test_refusal_becomes_an_abstention_without_citations():
    sources = [Source(1, "p1", SOURCES[0].title, date(2022, 1, 1), SOURCES[0].passage, None, 0.5)]
    answer = finish("q", "The sources do not answer this question. [1]", sources, sources)
    assert answer.abstained and answer.citations == []


def test_every_citation_title_is_a_source_title():
    sources = [Source(s.n, f"p{s.n}", s.title, None, s.passage, None, 0.5) for s in SOURCES]
    answer = finish(
        "q", "MetaShift has 12,868 sets [1]. AdaCAD gains 14.21% [2][5].", sources, sources
    )
    titles = {s.title for s in sources}
    assert [c.n for c in answer.citations] == [1, 2]
    assert all(c.title in titles for c in answer.citations)
    assert answer.dropped_citations == 1


def test_prompt_is_trimmed_to_the_window_dropping_the_weakest_sources():
    long_passage = "word " * 400
    sources = [
        Source(n, f"p{n}", f"Paper {n}", None, long_passage, None, 0.9 - n / 100)
        for n in range(1, 9)
    ]
    messages, kept = build_messages("What is new?", sources, context_window=2048, max_tokens=256)
    assert [s.n for s in kept] == list(range(1, len(kept) + 1))  # strongest kept, in order
    assert 0 < len(kept) < 8
    assert count_message_tokens(messages) + 256 <= 2048


def test_markers_only_answer_becomes_the_evidence_of_the_papers_it_points_at():
    from assistant.evidence import select_evidence

    sources = [Source(s.n, f"p{s.n}", s.title, None, s.passage, None, 0.5) for s in SOURCES]
    question = "How many classes does MetaShift cover?"
    quotes = select_evidence(question, sources, {}, None)  # keyword scoring only
    answer = finish(question, "[2] [1]", sources, sources, quotes)
    assert not answer.abstained and not answer.prose_supported
    assert answer.evidence and answer.evidence[0].n == 2  # the first marker the model wrote
    assert {c.n for c in answer.citations} >= {1, 2}
    answer = finish(question, "[1]", sources, sources, quotes)
    assert any("410 classes" in q.text for q in answer.evidence if q.n == 1)
    assert "[1?]" not in answer.full_text()


def test_a_size_said_in_words_must_be_in_the_source_too():
    # CSKV's abstract says 80%; SmolLM2 wrote "by orders of magnitude" and it was kept.
    sources = [
        SourceText(
            1,
            "CSKV: Training-Efficient Channel Shrinking for KV Cache",
            "CSKV can reduce the memory overhead of the KV cache by 80% while maintaining the "
            "model's long-context capability.",
        )
    ]
    inflated = check(
        "CSKV reduces the memory overhead of the KV cache by orders of magnitude [1].", sources
    )
    assert inflated.sentences[0].supported == {1: False}
    assert inflated.unknown_numbers == ["order of magnitude"]
    faithful = check("CSKV reduces the memory overhead of the KV cache by 80% [1].", sources)
    assert faithful.sentences[0].supported == {1: True}
    assert numbers("a tenfold speed-up, then 3-fold, never manifold") == {"ten-fold", "3-fold"}


def test_a_copied_sentence_cut_before_its_end_is_unfinished():
    from assistant.citations import unfinished

    source = (
        "While we made alignment faking easier by telling the model when and by what "
        "criteria it was being trained, we did not instruct the model to fake alignment. "
        "Experiments reduce generation MMD by 76%, improving IoU by 32%."
    )
    # Seen with Qwen 1.5B: the reply copied the abstract and stopped mid-sentence.
    assert unfinished("While we made alignment faking easier by telling the model when", source)
    assert unfinished("Experiments reduce generation MMD by 76%, improving IoU by 32", source)
    assert unfinished("While the model complies with harmful queries from free users")
    # A whole sentence, or a shortening that ends on its own stop, is finished.
    assert not unfinished("Experiments reduce generation MMD by 76%, improving IoU by 32%", source)
    assert not unfinished("We did not instruct the model to fake alignment [1].", source)
    assert not unfinished("While it is faster, it uses more memory", source)
    # A list's opening with the list cut away (Qwen: "To back our arguments: (1.)").
    assert unfinished("To back our arguments: (1.)")
    assert not unfinished("It is a large language model (LLM)")


def test_a_sentence_that_stops_mid_way_is_unfinished_even_with_a_stop():
    from assistant.citations import unfinished

    # An abstract cut at "how language models are ..." copied into a digest, marker and stop added.
    assert unfinished("There are gaps between scaling studies and how language models are [2].")
    assert unfinished("The model integrates length extension into")
    assert unfinished("It is used as")  # "as" ends a sentence only with a stop
    assert not unfinished("It is used as.")
    assert not unfinished("It reduces memory by 65.5% [1].")
    assert not unfinished("CSKV compresses the KV cache [1][2].")


# -- the review's calibrated rules (issue 23) -------------------------------------------------


def test_a_restatement_of_the_question_with_the_asked_fact_is_an_answer_not_an_echo():
    from assistant.citations import review

    question = "How many sets of natural images does MetaShift contain?"
    kept = review(
        "MetaShift contains 12,868 sets of natural images [1].", SOURCES, question=question
    )
    assert [s.text for s in kept.sentences] == ["MetaShift contains 12,868 sets of natural images."]
    echo = review("MetaShift contains sets of natural images [1].", SOURCES, question=question)
    assert [r.reason for r in echo.removed] == ["echo"]  # says it back, adds nothing


def test_in_a_one_source_answer_an_uncited_sentence_belongs_to_that_source():
    from assistant.citations import review

    answer = (
        "MetaShift is a collection of 12,868 sets of natural images [1]. "
        "It spans 410 classes built from Visual Genome annotations."
    )
    kept = review(answer, SOURCES)
    assert len(kept.sentences) == 2 and not kept.removed
    assert kept.sentences[1].cited == [1] and kept.sentences[1].attributed
    # ... but the same sentence with a figure the source lacks is still removed
    wrong = review(answer.replace("410", "520"), SOURCES)
    assert [r.reason for r in wrong.removed] == ["unsupported"]


def test_a_paraphrase_carrying_the_exact_figures_is_supported_and_a_wrong_figure_is_not():
    from assistant.citations import review

    paraphrase = "Compared with a fixed baseline, the adaptive decoder is 14.21% more accurate [2]."
    assert len(review(paraphrase, SOURCES).sentences) == 1
    wrong = review(paraphrase.replace("14.21", "41.2"), SOURCES)
    assert [r.reason for r in wrong.removed] == ["unsupported"]


def test_a_sentence_mixing_two_papers_under_one_citation_is_removed():
    from assistant.citations import review

    mixed = review(
        "MetaShift builds 12,868 sets of natural images by adaptively decoding conflicts [1].",
        SOURCES,
    )
    assert [r.reason for r in mixed.removed] == ["mixed-papers"]


def test_a_model_refusal_on_an_answerable_question_shows_the_evidence_not_an_abstention():
    from assistant.answer import ABSTAIN_TEXT, DECLINED_LEAD
    from assistant.evidence import Answerability, Quote

    text = SOURCES[0].passage
    sources = [Source(1, "p1", SOURCES[0].title, date(2022, 1, 1), text, None, 0.7)]
    quotes = {1: [Quote(1, "p1", text, 0, len(text), 0.8)]}
    verdict = Answerability(True, "the sources match the question", [], 0.7, 1.0)
    answer = finish(
        "How big is MetaShift?",
        "The sources do not answer this question.",
        sources,
        sources,
        quotes,
        verdict,
    )
    assert not answer.abstained and answer.model_declined
    assert answer.text == DECLINED_LEAD and answer.text != ABSTAIN_TEXT
    assert [q.text for q in answer.evidence] == [text]
    assert [c.n for c in answer.citations] == [1]


def test_a_true_sentence_under_the_wrong_number_moves_to_the_source_that_says_it():
    from assistant.citations import review

    kept = review(
        "AdaCAD gains 14.21% average accuracy over a static contrastive baseline [1].", SOURCES
    )
    assert (
        [s.cited for s in kept.sentences] == [[2]] and "[2]" in kept.text and "[1]" not in kept.text
    )
    wrong = review(
        "AdaCAD gains 41.2% average accuracy over a static contrastive baseline [1].", SOURCES
    )
    assert not wrong.sentences and len(wrong.removed) == 1  # a wrong figure moves nowhere


def test_a_three_word_title_prefix_said_as_a_sentence_is_a_header():
    from assistant.citations import review

    sources = [
        SourceText(1, "Deep Learning on a Data Diet", "We propose the GraNd and EL2N scores."),
        SourceText(
            2,
            "Trained Rank Pruning for Efficient Deep Neural Networks",
            "We propose Trained Rank Pruning (TRP), which iterates low rank approximation "
            "and training.",
        ),
    ]
    # SmolLM2 on the bundled set: a title's head shown as if it were a sentence.
    result = review("Trained Rank Pruning [2]\nTRP iterates low rank approximation [2].", sources)
    assert [r.reason for r in result.removed] == ["header"]
    assert [s.text for s in result.sentences] == ["TRP iterates low rank approximation."]


def test_a_sentence_naming_another_retrieved_paper_under_this_citation_is_wrong_paper():
    from assistant.citations import review

    sources = [
        SourceText(
            1,
            "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection",
            "Our 8-bit GaLore further reduces optimizer memory by up to 82.5% and total "
            "training memory by 63.3%, compared to a BF16 baseline.",
        ),
        SourceText(
            2,
            "Natural GaLore: Accelerating GaLore for memory-efficient LLM Training",
            "This work introduces Natural GaLore, a drop in replacement for AdamW.",
        ),
    ]
    # Qwen 1.5B on the bundled set: GaLore's figures credited to Natural GaLore under [1].
    text = (
        "Natural GaLore further reduces optimizer memory by up to 82.5% and total training "
        "memory by 63.3%, compared to a BF16 baseline. [1] GaLore reduces optimizer memory "
        "by up to 82.5% with 8-bit states. [1]"
    )
    result = review(text, sources)
    assert [r.reason for r in result.removed] == ["wrong-paper"]
    assert [s.text for s in result.sentences] == [
        "GaLore reduces optimizer memory by up to 82.5% with 8-bit states."
    ]


def test_a_copied_start_with_an_invented_clause_is_unsupported():
    from assistant.citations import review

    sources = [
        SourceText(
            1,
            "Deep Gradient Compression: Reducing the Communication Bandwidth",
            "DGC employs momentum correction and local gradient clipping on top of gradient "
            "sparsification to preserve accuracy during distributed training.",
        )
    ]
    # SmolLM2 on the bundled set: the first clause is the source's, the second invented.
    invented = review(
        "It uses momentum correction and local gradient clipping to preserve accuracy, "
        "while minimizing memory usage during compression [1].",
        sources,
    )
    assert [r.reason for r in invented.removed] == ["unsupported"]
    faithful = review(
        "It uses momentum correction and local gradient clipping, while sparsifying "
        "gradients to preserve accuracy [1].",
        sources,
    )
    assert len(faithful.sentences) == 1 and not faithful.removed


def test_half_the_words_is_not_enough_for_shown_prose_but_the_questions_words_are_set_aside():
    from assistant.citations import review

    sources = [
        SourceText(
            1,
            "Immiscible Diffusion: Accelerating Diffusion Training with Noise Assignment",
            "Current methods pair each image with random noise in every mini-batch; we assign "
            "noise to images with a linear assignment algorithm before diffusion training.",
        )
    ]
    # Half its words are the source's ("diffusion", "training", "random", ...), the
    # claim ("sampling grids", "do not optimise") is not: SmolLM2, labelled unsupported.
    half = review(
        "During diffusion training, current methods often use random sampling grids and do "
        "not optimize the schedule of each mini-batch [1].",
        sources,
    )
    assert [r.reason for r in half.removed] == ["unsupported"]
    # A restatement of the question around the source's fact is an answer.
    asked = "How can I stop my diffusion model pairing pictures with unrelated noise?"
    answer = review(
        "To stop pairing pictures with unrelated noise, assign noise to images with a linear "
        "assignment algorithm [1].",
        sources,
        question=asked,
    )
    assert len(answer.sentences) == 1, answer.removed


def test_a_title_cased_line_is_a_heading_not_a_statement():
    from assistant.citations import review

    sources = [
        SourceText(
            1,
            "Training-free Camera Control for Video Generation",
            "We propose a training-free and robust solution to offer camera movement control "
            "for off-the-shelf video diffusion models.",
        )
    ]
    result = review(
        "Training-free Camera Control for Video Diffusion Models [1]\n"
        "It offers camera movement control for off-the-shelf video diffusion models [1].",
        sources,
    )
    assert [r.reason for r in result.removed] == ["header"]
    assert [s.text for s in result.sentences] == [
        "It offers camera movement control for off-the-shelf video diffusion models."
    ]


def test_an_acronym_spelled_out_beside_it_or_a_size_the_question_says_is_no_invented_name():
    from assistant.citations import review

    sources = [
        SourceText(
            1,
            "Training LLMs over Neurally Compressed Text",
            "To overcome this, we propose Equal-Info Windows, a novel compression technique "
            "whereby text is segmented into blocks that each compress to the same bit length, "
            "learnable by models of 10 billion parameters.",
        )
    ]
    question = "Can a 10B model learn from arithmetic-coded text?"
    # Qwen 1.5B on the bundled set: both sentences labelled supported, both were removed.
    kept = review(
        "Equal-Info Windows (EIW) segments text into blocks that compress to the same bit "
        "length [1]. A 10B model can learn from text segmented into such blocks [1].",
        sources,
        question=question,
    )
    assert len(kept.sentences) == 2, kept.removed
    invented = review("Equal Windows (EQW) segments text into blocks [1].", sources)
    assert [r.reason for r in invented.removed] == ["unknown-paper"]


def test_which_papers_shows_every_paper_retrieval_ranks_near_its_first():
    from assistant.evidence import Answerability, Quote

    # The bundled set's "Which papers use Gaussian splatting ...?": Momentum-GS (retrieval's
    # third, cosine 0.48 against 0.55) lost its evidence to its sentences' lower score.
    rows = [
        ("CityGaussianV2: Large-Scale Scene Reconstruction", 0.55, 0.72),
        ("EndoGaussian: Gaussian Splatting for Endoscopic Scenes", 0.53, 1.05),
        ("Momentum-GS: Gaussian Self-Distillation for Large Scenes", 0.48, 0.43),
        ("Decomposed Diffusion Sampler for Inverse Problems", 0.37, 0.56),
    ]
    sources, quotes = [], {}
    for n, (title, similarity, score) in enumerate(rows, 1):
        text = f"We present {title.split(':')[0]}, which reconstructs scenes."
        sources.append(Source(n, f"p{n}", title, date(2024, 1, 1), text, None, similarity))
        quotes[n] = [Quote(n, f"p{n}", text, 0, len(text), score)]
    verdict = Answerability(True, "the sources match the question", [], 0.55, 1.0)
    question = "Which papers use Gaussian splatting for scene reconstruction?"
    answer = finish(question, "", sources, sources, quotes, verdict)
    assert sorted({q.n for q in answer.evidence}) == [1, 2, 3]  # not the diffusion sampler


def test_a_marker_the_sentence_needs_stays_in_place_and_is_never_moved():
    from assistant.citations import review

    sources = [
        SourceText(
            1,
            "WER is Unaware: Assessing How ASR Errors Distort Clinical Understanding",
            "WER correlates poorly with clinician-assigned risk labels. Our LLM-as-a-Judge "
            "obtains 90% accuracy against clinicians.",
        ),
        SourceText(2, "Repetition Disfluency in Bangla ASR", "We study disfluency in Bangla."),
    ]
    # Qwen 1.5B on the 2025 week: "introduced in [2]" for source 1's judge. Stripped and
    # moved to [1], the sentence read "introduced in achieves ... [1]".
    moved = review("The LLM-as-a-Judge introduced in [2] achieves 90% accuracy.", sources)
    assert not moved.sentences and [r.reason for r in moved.removed] == ["wrong-paper"]
    kept = review("As shown in [1], WER correlates poorly with clinician-assigned risk.", sources)
    assert kept.text == "As shown in [1], WER correlates poorly with clinician-assigned risk."


def test_yes_with_the_question_said_back_is_an_echo_even_with_its_acronym():
    from assistant.citations import review

    sources = [
        SourceText(
            1,
            "WER is Unaware",
            "WER and existing metrics correlate poorly with clinician-assigned risk labels in "
            "doctor-patient conversations.",
        )
    ]
    question = (
        "Does the word error rate of speech transcription reflect the clinical harm of "
        "transcription mistakes in doctor-patient conversations?"
    )
    # The source says the opposite; a "Yes" adds nothing the review can check.
    result = review(
        "Yes, the word error rate (WER) of speech transcription does reflect the clinical "
        "harm of transcription mistakes in doctor-patient conversations [1].",
        sources,
        question=question,
    )
    assert [r.reason for r in result.removed] == ["echo"]


def test_a_sentence_citing_two_papers_is_shown_under_the_one_that_says_it():
    from assistant.citations import review

    sources = [
        SourceText(1, "UA-Code-Bench", "The benchmark comprises 500 problems from Eolymp."),
        SourceText(
            2,
            "From Proof to Program: Tool-Induced Myopia",
            "We study it using PYMATH, a benchmark of 1,679 competition-level math problems.",
        ),
    ]
    # Qwen 1.5B on the 2025 week wrote "[3][2]" where only one paper says it: the whole
    # sentence was removed, and the evidence then led with the other benchmark.
    result = review(
        "The PYMATH benchmark contains 1,679 competition-level math problems [2][1].", sources
    )
    assert [s.cited for s in result.sentences] == [[2]] and "[1]" not in result.text


def _sample_paper(n: int, title_start: str) -> SourceText:
    from assistant.ingest import bundled_corpus
    from assistant.readers import read_file

    for file in sorted(bundled_corpus().iterdir()):
        for paper in read_file(file).papers:
            if paper.title.startswith(title_start):
                return SourceText(n, paper.title, paper.abstract)
    raise AssertionError(title_start)


def test_a_method_named_under_another_paper_and_an_it_after_it_are_removed():
    """SmolLM2, bundled, on "Which papers reduce optimizer memory when training LLMs, and
    how do their approaches differ?": both sentences were shown as supported."""
    from assistant.citations import review

    sources = [
        _sample_paper(1, "GaLore: Memory-Efficient"),
        _sample_paper(2, "Dissecting the Runtime Performance"),
        _sample_paper(3, "Natural GaLore"),
        _sample_paper(4, "FRUGAL"),
    ]
    answer = (
        "This work introduces a new memory-efficient optimization framework called GaLore, "
        "which reduces the state of optimizer overloads when training LLMs. [3] It is designed "
        "to reduce the number of parameters in the optimizer and improve performance on both "
        "end users and hardware platforms. [2]"
    )
    question = "Which papers reduce optimizer memory when training LLMs, and how do they differ?"
    checked = review(answer, sources, question=question)
    assert checked.text == ""
    assert [r.reason for r in checked.removed] == ["wrong-paper", "wrong-paper"]
    # Under the paper that does introduce it, the same claim stands; so does an "It" that
    # continues a shown sentence about the same paper.
    fair = (
        "This work introduces a new memory-efficient optimization framework called FRUGAL. [4] "
        "It uses full-rank updates with gradient splitting. [4]"
    )
    assert len(review(fair, sources, question=question).sentences) == 2


def test_the_names_a_paper_introduces_are_its_title_name_and_what_it_proposes():
    from assistant.attribution import claims_other_method

    galore = SourceText(
        1,
        "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection",
        "In this work, we propose Gradient Low-Rank Projection (GaLore), a training strategy.",
    )
    assert not claims_other_method("The paper introduces a method called GaLore [1].", [galore])
    assert not claims_other_method(
        "It proposes a strategy named Gradient Low-Rank Projection [1].", [galore]
    )
    assert claims_other_method("It presents a framework called FRUGAL [1].", [galore])
    assert not claims_other_method("GaLore is called a strategy [1].", [galore])  # no claim
