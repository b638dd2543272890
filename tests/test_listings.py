"""Files people already have (issue 19, item 2): daily-arXiv JSONL listings ingest every paper
once; `--field ours=theirs` maps other column names; a file whose every record lacks the
abstract is one line naming the file, the missing field and the fields it has."""

from __future__ import annotations

import json
import os
from pathlib import Path

from assistant.ingest import expand_paths, merge_records
from assistant.readers import read_file

from .cli_runner import run_assistant
from .conftest import ROOT, embed_model_dir

WEEK = ROOT / "tests" / "data" / "arxiv-week-2025"


def test_daily_listing_folder_reads_every_paper_once():
    papers, ids = [], set()
    paths = expand_paths([WEEK])  # as `assistant ingest FOLDER` walks it: its README is skipped
    assert paths and all(p.suffix == ".jsonl" for p in paths)
    for path in paths:
        result = read_file(path)
        assert not result.errors, result.errors[:3]
        papers.extend(result.papers)
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                ids.add(json.loads(line)["id"].split("v")[0])
    merged = merge_records(papers)
    assert len(papers) > len(merged)  # cross-lists and both tools repeat papers
    assert set(merged) == ids


def _renamed(tmp_path: Path) -> Path:
    """A real listing whose abstract column another tool called `abs_text`."""
    source = WEEK / "hoder-zyf" / "2025-11-18.jsonl"
    out = tmp_path / "2025-11-18.jsonl"
    lines = []
    for line in source.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        record["abs_text"] = record.pop("summary")
        lines.append(json.dumps(record, ensure_ascii=False))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def test_every_record_lacking_the_abstract_is_one_line_and_field_maps_it(tmp_path: Path):
    path = _renamed(tmp_path)
    result = read_file(path)
    assert result.papers == [] and len(result.errors) == 1
    reason = result.errors[0].reason
    assert str(path) == result.errors[0].source
    assert "lack the abstract" in reason and "abs_text" in reason and "categories" in reason
    assert "--field abstract=NAME" in reason
    mapped = read_file(path, field_map={"abstract": "abs_text"})
    assert not mapped.errors and len(mapped.papers) == 277


def test_cli_one_line_then_field(tmp_path: Path):
    path = _renamed(tmp_path)
    env = {**os.environ, "ASSISTANT_HOME": str(tmp_path / "home")}
    if embed_model_dir():
        env["ASSISTANT_EMBED_MODEL_DIR"] = str(embed_model_dir())
    base = ["ingest", str(path)]
    proc = run_assistant(base, env=env)
    assert proc.returncode == 1
    failed = [line for line in proc.stdout.splitlines() if line.startswith("failed")]
    assert len(failed) == 1 and "abs_text" in failed[0]
    bad = run_assistant([*base, "--field", "abstract"], env=env)
    assert bad.returncode == 2 and "OURS=THEIRS" in bad.stderr
