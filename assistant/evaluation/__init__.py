"""The evaluation behind `assistant eval run` and `assistant eval compare`.

It runs `eval/questions.jsonl` through the real retrieval and answer path and
scores retrieval, citations, answers and cost. Every metric is reported with
the number of questions (or citations) it was computed on, because a mean
over 3 rows and a mean over 48 rows are different claims.

Modules:
- `metrics`: pure scoring functions (no model, no store), unit-tested on hand-made records;
- `judge`: the optional LLM faithfulness judge and its defensive verdict parser;
- `runner`: runs the questions, caches answers for resumption, writes the run folder;
- `report` and `chart`: `report.md` and the Pillow bar chart;
- the click commands are `assistant/cli/evaluate.py` (heavy imports stay inside them).
"""
