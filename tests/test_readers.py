"""Tests for assistant.readers against the real sample corpus and small hand-written files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from assistant.readers import FORMATS, ReadResult, detect_format, read_file
from assistant.records import RecordError, title_key

CORPUS = Path(__file__).parent.parent / "assistant/data/hf-daily-papers"
DATA = Path(__file__).parent / "data/readers"
SAMPLES = sorted(CORPUS.glob("*.txt"))
PAGE_NOV_11 = CORPUS / "002_241f09742e935a45.txt"
PAGE_AUG_6 = CORPUS / "000_8d9f4bde761ee7cd.txt"
PAGE_DEC_9 = CORPUS / "003_5ed1fa5957327774.txt"

ABSTRACT = (
    "We study a problem that matters. Our method improves on prior work by a wide margin "
    "on three benchmarks, and we analyse why. "
) * 4


def by_title(result: ReadResult, prefix: str):
    matches = [p for p in result.papers if p.title.startswith(prefix)]
    assert len(matches) == 1, [p.title for p in matches]
    return matches[0]


def reasons(result: ReadResult) -> list[tuple[int | None, str]]:
    return [(e.line, e.reason) for e in result.errors]


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def page(*blocks: str, header: str = "new\n\nDaily Papers\n\nNov 11\n") -> str:
    return header + "\n" + "\n\n".join(blocks) + "\n"


# --- the sample corpus (Hugging Face Daily Papers pages) ---------------------------------


def test_corpus_is_the_five_sample_files():
    assert len(SAMPLES) == 5


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_files_are_detected_as_hf_pages_and_read_without_errors(path):
    assert detect_format(path, path.read_text(encoding="utf-8")[:4096]) == "hf-page"
    result = read_file(path, page_year=2025)
    assert result.errors == []
    assert len(result.papers) > 30
    assert all(p.abstract and p.title for p in result.papers)
    assert all(p.source == str(path) for p in result.papers)


def test_corpus_holds_264_distinct_papers():
    keys = set()
    total = 0
    for path in SAMPLES:
        result = read_file(path)
        assert result.errors == []
        total += len(result.papers)
        keys.update(title_key(p.title) for p in result.papers)
    assert len(keys) == 264
    assert total > 264  # some papers are on more than one page


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_record_line_points_at_its_title(path):
    lines = path.read_text(encoding="utf-8").split("\n")
    for paper in read_file(path).papers:
        assert " ".join(lines[paper.line - 1].split()) == paper.title
        # the abstract is the next non-blank line
        following = [line for line in lines[paper.line :] if line.strip()]
        assert " ".join(following[0].split()) == paper.abstract


def test_elaswave_has_author_count_and_inferred_year():
    result = read_file(PAGE_NOV_11, page_year=2025)
    paper = by_title(result, "ElasWave: An Elastic-Native System for Scalable Hybrid-Parallel")
    assert paper.title == "ElasWave: An Elastic-Native System for Scalable Hybrid-Parallel Training"
    assert paper.author_count == 19
    assert paper.organisation is None
    assert paper.published == date(2025, 10, 1)
    assert paper.year_inferred is True
    assert paper.line == 13
    assert PAGE_NOV_11.read_text(encoding="utf-8").split("\n")[12] == paper.title


def test_date_with_upvotes_and_no_year():
    result = read_file(PAGE_NOV_11, page_year=2025)
    paper = by_title(result, "StreamBP:")
    assert (paper.published.month, paper.published.day) == (6, 3)
    assert paper.published == date(2025, 6, 3)
    assert paper.upvotes == 2
    assert paper.year_inferred is True
    assert paper.author_count == 4


def test_date_with_year_and_upvotes():
    result = read_file(PAGE_NOV_11, page_year=2025)
    paper = by_title(result, "Language models scale reliably with over-training")
    assert paper.published == date(2024, 3, 13)
    assert paper.upvotes == 1
    assert paper.year_inferred is False
    assert paper.author_count == 23


def test_date_with_year_and_no_upvotes():
    paper = by_title(read_file(PAGE_NOV_11), "On-Device Training Under 256KB Memory")
    assert paper.published == date(2022, 6, 30)
    assert paper.upvotes is None
    assert paper.year_inferred is False


def test_organisation_instead_of_author_count():
    result = read_file(PAGE_NOV_11)
    paper = by_title(result, "AdamP: ")
    assert paper.organisation == "naver-ai NAVER AI Lab"
    assert paper.author_count is None
    assert paper.published == date(2020, 6, 15)
    lexsi = [p for p in result.papers if p.organisation == "Lexsi Lexsi Labs"]
    assert len(lexsi) == 1 and lexsi[0].upvotes == 2


def test_single_author_count_reads_as_one():
    # the page says "1 authors"
    counts = [p.author_count for p in read_file(PAGE_NOV_11).papers]
    assert 1 in counts


def test_pages_without_metadata_blocks_have_no_dates():
    for path in (
        CORPUS / "000_8d9f4bde761ee7cd.txt",
        CORPUS / "001_6bca746acf7cc91f.txt",
        CORPUS / "004_de09b6e12a2e9100.txt",
    ):
        papers = read_file(path).papers
        assert papers
        assert all(p.published is None and p.author_count is None for p in papers)
        assert all(p.upvotes is None and not p.year_inferred for p in papers)


def test_titles_keep_special_characters_and_latex():
    titles = {p.title for path in SAMPLES for p in read_file(path).papers}
    assert any(t.startswith("M$^3$ViT: Mixture-of-Experts") for t in titles)
    assert any(t.startswith("Split & Merge: ") for t in titles)
    assert any(
        t.startswith("Do LLMs Have Distinct and Consistent Personality? TRAIT:") for t in titles
    )


def test_same_paper_in_two_sample_files_has_same_id():
    first = by_title(read_file(PAGE_AUG_6), "GAQAT: gradient-adaptive")
    second = by_title(read_file(PAGE_NOV_11), "GAQAT: gradient-adaptive")
    assert first.source != second.source
    assert first.line != second.line
    assert first.paper_id == second.paper_id
    assert first.paper_id.startswith("title:")
    other = by_title(read_file(PAGE_NOV_11), "On-Device Training Under 256KB Memory")
    assert other.paper_id != first.paper_id


def test_page_year_comes_from_today_when_not_given():
    # Page "Nov 11": on 2026-01-05 it is 2025-11-11; on 2025-11-10 it can only be 2024-11-11.
    late = by_title(read_file(PAGE_NOV_11, today=date(2026, 1, 5)), "ElasWave")
    early = by_title(read_file(PAGE_NOV_11, today=date(2025, 11, 10)), "ElasWave")
    assert late.published == date(2025, 10, 1)
    assert early.published == date(2024, 10, 1)
    assert late.year_inferred and early.year_inferred


def test_page_dated_dec_9_places_its_papers_before_it():
    result = read_file(PAGE_DEC_9, page_year=2024)
    pixels = by_title(result, "PIXELS: Progressive Image Xemplar-based Editing")
    assert pixels.published == date(2024, 1, 16)
    assert all(p.published <= date(2024, 12, 9) for p in result.papers if p.year_inferred)


def test_paper_date_after_page_date_goes_to_previous_year(tmp_path):
    path = write(tmp_path, "page.txt", page(f"Late Paper\n\n{ABSTRACT}\n\n  • 3 authors\n·\nDec 9"))
    paper = read_file(path, page_year=2025).papers[0]
    assert paper.published == date(2024, 12, 9)
    assert paper.year_inferred is True


def test_feb_29_does_not_crash_year_inference(tmp_path):
    leap = page(
        f"Leap Day Paper\n\n{ABSTRACT}\n\n  • 2 authors\n·\nFeb 29",
        header="Daily Papers\n\nMar 1\n",
    )
    path = write(tmp_path, "leap.txt", leap)
    result = read_file(path, page_year=2025)
    assert result.errors == []
    assert result.papers[0].published == date(2024, 2, 29)

    page_on_leap_day = write(
        tmp_path,
        "leap-page.txt",
        page(f"Paper\n\n{ABSTRACT}\n\n  • 2 authors\n·\nFeb 28", header="Daily Papers\n\nFeb 29\n"),
    )
    result = read_file(page_on_leap_day, today=date(2025, 6, 1))
    assert result.errors == []
    assert result.papers[0].published == date(2024, 2, 28)


def test_page_detected_by_date_without_chrome(tmp_path):
    path = write(tmp_path, "bare.txt", f"Nov 11\n\nSome Title\n\n{ABSTRACT}\n")
    assert detect_format(path, path.read_text()) == "hf-page"
    assert [p.title for p in read_file(path).papers] == ["Some Title"]


def test_page_with_crlf_line_endings_reads_the_same(tmp_path):
    text = PAGE_NOV_11.read_text(encoding="utf-8")
    path = write(tmp_path, "crlf.txt", text.replace("\n", "\r\n").encode("utf-8"))
    original = read_file(PAGE_NOV_11, page_year=2025).papers
    converted = read_file(path, page_year=2025).papers
    assert [(p.title, p.line, p.published) for p in converted] == [
        (p.title, p.line, p.published) for p in original
    ]


def test_page_paper_without_abstract_is_an_error_and_neighbours_survive(tmp_path):
    text = page(
        f"First Paper\n\n{ABSTRACT}\n\n  • 3 authors\n·\nOct 1",
        "Orphan Title Without Abstract",
        f"Third Paper\n\n{ABSTRACT}",
        "Metadata Follows Title\n\n  • 4 authors\n·\nOct 2",
        f"Last Paper\n\n{ABSTRACT}",
        "Title At End Of File",
    )
    path = write(tmp_path, "gaps.txt", text)
    result = read_file(path, page_year=2025)
    assert [p.title for p in result.papers] == ["First Paper", "Third Paper", "Last Paper"]
    lines = text.split("\n")
    assert [lines[e.line - 1] for e in result.errors] == [
        "Orphan Title Without Abstract",
        "Metadata Follows Title",
        "Title At End Of File",
    ]
    assert all(e.reason.startswith("no abstract") for e in result.errors)
    assert result.papers[2].line == lines.index("Last Paper") + 1


def test_page_abstract_without_title_is_an_error(tmp_path):
    text = page(f"First\n\n{ABSTRACT}", "Stray abstract. " + ABSTRACT, f"Second\n\n{ABSTRACT}")
    result = read_file(write(tmp_path, "stray.txt", text))
    assert [p.title for p in result.papers] == ["First", "Second"]
    assert len(result.errors) == 1
    assert result.errors[0].reason.startswith("no title")
    assert text.split("\n")[result.errors[0].line - 1].startswith("Stray abstract.")


def test_page_date_that_does_not_exist_in_page_year(tmp_path):
    text = page(f"Paper\n\n{ABSTRACT}\n\n  • 2 authors\n·\nFeb 1", header="Feb 29\n")
    result = read_file(write(tmp_path, "p.txt", text), page_year=2025)
    assert reasons(result) == [(1, "page date 'Feb 29' does not exist in 2025")]
    assert result.papers[0].published == date(2025, 2, 1)


def test_page_short_abstract_is_still_an_abstract(tmp_path):
    path = write(tmp_path, "short.txt", page("A Title\n\nA short abstract.", f"B\n\n{ABSTRACT}"))
    result = read_file(path)
    assert result.errors == []
    assert [p.abstract for p in result.papers][0] == "A short abstract."


def test_page_unparseable_date_names_field_and_value(tmp_path):
    text = page(
        f"Bad Date Paper\n\n{ABSTRACT}\n\n  • 3 authors\n·\nFeb 30",
        f"Good Paper\n\n{ABSTRACT}\n\n  • 1 authors\n·\nJan 2, 2024",
    )
    path = write(tmp_path, "dates.txt", text)
    result = read_file(path)
    # Issue 10 item 13: the date is lost, not the paper; the warning says so.
    assert [(p.title, p.published) for p in result.papers][0] == ("Bad Date Paper", None)
    assert [p.title for p in result.papers][1] == "Good Paper"
    assert result.errors == [] and len(result.warnings) == 1
    warning = result.warnings[0]
    assert "'date'" in warning.reason and "Feb 30" in warning.reason
    assert "stored without a date" in warning.reason
    assert text.split("\n")[warning.line - 1] == "Feb 30"


# --- arXiv Atom ---------------------------------------------------------------------------


def test_arxiv_atom_response():
    path = DATA / "arxiv_api.xml"
    result = read_file(path)
    assert result.errors == []
    assert [p.arxiv_id for p in result.papers] == ["2401.12345", "2312.00752", "hep-th/9711200"]
    first = result.papers[0]
    assert first.title == (
        "Low-Bit Quantization of Large Language Models: A Survey of Methods & Trade-offs"
    )
    assert first.abstract.startswith("Quantization reduces the memory footprint and latency of")
    assert "  " not in first.abstract and "\n" not in first.abstract
    assert first.authors == ["Alice Zhang", "Bruno Silva"]
    assert first.author_count == 2
    assert first.published == date(2024, 1, 22)
    assert first.url == "http://arxiv.org/abs/2401.12345v2"
    lines = path.read_text(encoding="utf-8").split("\n")
    for paper in result.papers:
        assert lines[paper.line - 1].strip() == "<entry>"
    assert [p.line for p in result.papers] == [11, 35, 55]
    assert [p.primary_class for p in result.papers] == ["cs.CL", "cs.LG", "hep-th"]


def test_arxiv_atom_broken_xml_is_one_error_with_line(tmp_path):
    text = (DATA / "arxiv_api.xml").read_text(encoding="utf-8")
    broken = text.replace("</title>\n    <summary>  Foundation", "\n    <summary>  Foundation", 1)
    path = write(tmp_path, "broken.xml", broken)
    result = read_file(path)
    assert result.papers == []
    assert len(result.errors) == 1
    assert result.errors[0].reason.startswith("broken XML: mismatched tag")
    assert 35 < result.errors[0].line < 60


def test_arxiv_atom_refuses_entity_declarations(tmp_path):
    text = (
        '<?xml version="1.0"?>\n<!DOCTYPE feed [\n<!ENTITY x SYSTEM "file:///etc/passwd">\n]>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>&x;</title></entry></feed>\n'
    )
    result = read_file(write(tmp_path, "evil.xml", text))
    assert result.papers == []
    assert reasons(result) == [(3, "XML entity declarations are not accepted")]


def test_arxiv_atom_bad_published_date_names_field(tmp_path):
    text = (DATA / "arxiv_api.xml").read_text(encoding="utf-8")
    text = text.replace("<published>2023-12-01T18:01:34Z", "<published>first of December", 1)
    result = read_file(write(tmp_path, "feed.xml", text))
    assert [p.arxiv_id for p in result.papers] == ["2401.12345", "2312.00752", "hep-th/9711200"]
    assert result.papers[1].published is None and result.errors == []
    assert [(w.line, w.reason) for w in result.warnings] == [
        (35, "unparseable date in field 'published': 'first of December'; stored without a date")
    ]


# --- arXiv metadata snapshot --------------------------------------------------------------


def test_arxiv_snapshot():
    result = read_file(DATA / "arxiv_snapshot.json")
    assert result.errors == []
    first, second, third = result.papers
    assert [p.line for p in result.papers] == [1, 2, 3]
    assert first.arxiv_id == "0704.0001"
    assert first.title == (
        "Calculation of prompt diphoton production cross sections at Tevatron and LHC energies"
    )
    assert first.abstract.startswith("A fully differential calculation in perturbative")
    assert "\n" not in first.abstract
    assert first.published == date(2007, 4, 2)  # v1 created, not update_date
    assert first.authors[0] == "C. Balázs"  # from authors_parsed
    assert first.author_count == 4
    assert second.arxiv_id == "hep-th/9711200"
    assert second.published == date(1997, 11, 27)
    assert third.published == date(2024, 5, 31)  # no versions: update_date
    assert third.authors == ["Albert Gu", "Tri Dao"]  # "A and B" string split
    assert third.url == "https://arxiv.org/abs/2312.00752"
    assert [p.primary_class for p in result.papers] == ["hep-ph", "hep-th", "cs.LG"]


def test_arxiv_snapshot_bad_version_date(tmp_path):
    good = (DATA / "arxiv_snapshot.json").read_text(encoding="utf-8").split("\n")[2]
    bad = good.replace(
        '"update_date":"2024-05-31"', '"versions":[{"version":"v1","created":"soon"}]'
    )
    path = write(tmp_path, "snap.json", "\n".join([good, bad, good]) + "\n")
    result = read_file(path)
    assert len(result.papers) == 3 and result.papers[1].published is None
    assert result.errors == []
    assert [(w.line, w.reason) for w in result.warnings] == [
        (2, "unparseable date in field 'versions.created': 'soon'; stored without a date")
    ]


# --- Hugging Face API -----------------------------------------------------------------------


def test_hf_api_response():
    path = DATA / "hf_api.json"
    result = read_file(path)
    assert result.errors == []
    first, second = result.papers
    assert first.arxiv_id == "2501.00001"
    assert first.title == "Sparse Mixture-of-Experts at Scale: Routing Without Tears"
    assert first.authors == ["Mei Chen", "Jonas Weber", "Priya Natarajan"]
    assert first.upvotes == 12
    assert first.published == date(2025, 1, 1)
    assert first.organisation == "naver-ai NAVER AI Lab"
    assert second.organisation is None
    assert second.published == date(2024, 12, 31)
    lines = path.read_text(encoding="utf-8").split("\n")
    assert [p.line for p in result.papers] == [2, 23]
    assert all(lines[p.line - 1].strip() == "{" for p in result.papers)


def test_hf_api_broken_element_keeps_earlier_ones(tmp_path):
    text = (DATA / "hf_api.json").read_text(encoding="utf-8")
    broken = text.replace('"upvotes": 3,', '"upvotes": 3,,', 1)
    result = read_file(write(tmp_path, "api.json", broken))
    assert [p.arxiv_id for p in result.papers] == ["2501.00001"]
    assert len(result.errors) == 1
    assert result.errors[0].reason.startswith("invalid JSON: ")
    assert '"upvotes": 3,,' in broken.split("\n")[result.errors[0].line - 1]


def test_hf_api_entry_without_abstract(tmp_path):
    text = (
        '[{"paper": {"id": "2501.00002", "title": "No Summary Here", "summary": ""}},\n'
        ' {"paper": {"id": "2501.00003", "title": "Has One", "summary": "Yes it does."}}]\n'
    )
    result = read_file(write(tmp_path, "api.json", text))
    assert [p.title for p in result.papers] == ["Has One"]
    assert result.papers[0].line == 2
    assert reasons(result) == [(1, "no abstract for 'No Summary Here'")]


# --- CSV and JSONL ----------------------------------------------------------------------------


def test_csv_with_quoted_multiline_field():
    result = read_file(DATA / "papers.csv")
    titles = [p.title for p in result.papers]
    assert titles == [
        "Attention Is All You Need",
        "LoRA: Low-Rank Adaptation of Large Language Models",
        "Scaling Laws for Neural Language Models",  # its date is unparseable: kept undated
        "Chinchilla: Training Compute-Optimal Large Language Models",
    ]
    assert [p.line for p in result.papers] == [2, 5, 7, 8]
    assert result.papers[2].published is None
    attention = result.papers[0]
    assert 'the "Transformer", based solely' in attention.abstract
    assert "\n" not in attention.abstract
    assert attention.arxiv_id == "1706.03762"
    assert attention.authors == ["Ashish Vaswani", "Noam Shazeer", "Niki Parmar"]
    assert attention.upvotes == 120
    assert attention.published == date(2017, 6, 12)
    lora = result.papers[1]
    assert lora.arxiv_id == "2106.09685"  # taken from the URL
    assert lora.authors == ["Edward J. Hu", "Yelong Shen", "Phillip Wallis"]
    assert reasons(result) == [
        (6, "no abstract for 'Untitled draft, no abstract yet'"),
    ]
    assert [(w.line, w.reason) for w in result.warnings] == [
        (7, "unparseable date in field 'published': '23rd of January'; stored without a date"),
    ]


def test_csv_without_title_column(tmp_path):
    path = write(tmp_path, "no-title.csv", "name,abstract\nA Paper,An abstract.\n")
    result = read_file(path)
    assert result.papers == []
    assert reasons(result) == [(1, "CSV header has no 'title' column")]


def test_csv_detected_by_header_without_extension(tmp_path):
    path = write(tmp_path, "export.txt", 'TITLE,ABSTRACT\nA Paper,"An abstract, with a comma."\n')
    assert detect_format(path, path.read_text()) == "csv"
    result = read_file(path)
    assert [(p.title, p.abstract) for p in result.papers] == [
        ("A Paper", "An abstract, with a comma.")
    ]


def test_csv_unclosed_quote_reports_record_start(tmp_path):
    path = write(tmp_path, "open.csv", 'title,abstract\nGood,Fine.\nOpen,"never closed\nmore\n')
    result = read_file(path)
    assert [p.title for p in result.papers] == ["Good"]
    assert len(result.errors) == 1 and result.errors[0].line == 3
    assert result.errors[0].reason.startswith("broken CSV")


def test_jsonl_good_and_bad_records():
    result = read_file(DATA / "papers.jsonl")
    assert [(p.line, p.arxiv_id) for p in result.papers] == [
        (1, "2305.18290"),
        (2, "2305.14314"),
        (8, None),
        (9, "2205.14135"),
    ]
    dpo, qlora, undated, flash = result.papers
    assert undated.published is None
    assert (
        dpo.title
        == "Direct Preference Optimization: Your Language Model is Secretly a Reward Model"
    )
    assert dpo.published == date(2023, 5, 29)
    assert dpo.upvotes == 5
    assert qlora.authors == ["Tim Dettmers", "Artidoro Pagnoni", "Ari Holtzman"]
    assert qlora.organisation == "UW NLP"
    assert flash.published == date(2022, 5, 27)
    assert reasons(result) == [
        (4, "invalid JSON: Expecting ',' delimiter (column 61)"),
        (5, "not a JSON object (got list)"),
        (6, "no title"),
        (7, "no abstract for 'A Paper Without an Abstract'"),
    ]
    assert [(w.line, w.reason) for w in result.warnings] == [
        (8, "unparseable date in field 'published': 'sometime in 2023'; stored without a date"),
    ]
    assert all(e.source == str(DATA / "papers.jsonl") for e in result.errors)


# --- detection and overrides -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("arxiv_api.xml", "arxiv-atom"),
        ("arxiv_snapshot.json", "arxiv-snapshot"),
        ("hf_api.json", "hf-api"),
        ("papers.csv", "csv"),
        ("papers.jsonl", "jsonl"),
    ],
)
def test_detect_format(name, expected):
    path = DATA / name
    assert detect_format(path, path.read_text(encoding="utf-8")) == expected
    assert expected in FORMATS


def test_detection_trusts_content_over_extension(tmp_path):
    path = write(tmp_path, "feed.txt", (DATA / "arxiv_api.xml").read_text(encoding="utf-8"))
    assert detect_format(path, path.read_text()) == "arxiv-atom"
    assert len(read_file(path).papers) == 3


def test_detect_format_raises_when_it_cannot_tell(tmp_path):
    path = write(tmp_path, "notes.txt", "just some notes\nabout nothing\n")
    with pytest.raises(RecordError) as caught:
        detect_format(path, path.read_text())
    assert caught.value.source == str(path)
    result = read_file(path)
    assert result.papers == [] and len(result.errors) == 1
    assert result.errors[0].reason.startswith("cannot tell the file format")


def test_fmt_overrides_detection(tmp_path):
    snapshot = DATA / "arxiv_snapshot.json"
    as_jsonl = read_file(snapshot, "jsonl")
    as_snapshot = read_file(snapshot)
    assert len(as_jsonl.papers) == len(as_snapshot.papers) == 3
    # read as plain JSONL, the snapshot's `versions` are not looked at
    assert as_jsonl.papers[0].published is None
    assert as_snapshot.papers[0].published == date(2007, 4, 2)

    notes = write(tmp_path, "notes.txt", "Nov 11\n\nA Title\n\n" + ABSTRACT + "\n")
    assert [p.title for p in read_file(notes, "hf-page").papers] == ["A Title"]
    assert reasons(read_file(notes, "csv")) == [(1, "CSV header has no 'title' column")]


def test_unknown_fmt_is_reported_not_raised():
    result = read_file(DATA / "papers.jsonl", "yaml")
    assert result.papers == []
    assert result.errors[0].reason.startswith("unknown format 'yaml'")


# --- whole-file problems --------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "  \n\n\t\n"])
def test_empty_file(tmp_path, content):
    result = read_file(write(tmp_path, "empty.jsonl", content))
    assert result.papers == []
    assert reasons(result) == [(None, "empty file")]


def test_binary_file(tmp_path):
    result = read_file(write(tmp_path, "paper.pdf", b"%PDF-1.7\n\x00\x01\x02binary\xff"))
    assert result.papers == []
    assert reasons(result) == [(None, "binary file, not text")]


def test_non_utf8_file_names_the_line(tmp_path):
    data = b"title,abstract\nA,Fine.\n" + "Caf\u00e9,Latin-1 here.\n".encode("latin-1")
    result = read_file(write(tmp_path, "latin1.csv", data))
    # Issue 10 item 2: the bad line costs that line only.
    assert [p.title for p in result.papers] == ["A"]
    assert reasons(result) == [
        (3, "not UTF-8 text (invalid byte 0xe9 at column 4); the paper at line 3 was skipped")
    ]


def test_utf8_bom_is_ignored(tmp_path):
    path = write(tmp_path, "bom.csv", b"\xef\xbb\xbfTitle,Abstract\nA Paper,An abstract.\n")
    result = read_file(path)
    assert result.errors == []
    assert [p.title for p in result.papers] == ["A Paper"]


def test_missing_path_does_not_crash(tmp_path):
    result = read_file(tmp_path / "nowhere.jsonl")
    assert result.papers == []
    assert len(result.errors) == 1
    assert result.errors[0].reason.startswith("cannot read file")
