"""A replay server for `assistant fetch`: real recorded responses (tests/data/recorded/) served by
pytest-httpserver, day by day, plus the faults a real server shows (429/503 with Retry-After,
a cut body, a hang), all from the same server."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from werkzeug.wrappers import Request, Response

RECORDED = Path(__file__).parent / "data" / "recorded"
HF_FILES = [
    RECORDED / "hf" / "all-news-ai-2026-07-31.json",
    RECORDED / "hf" / "sotawhat-2026-06-12.json",
]
ARX = RECORDED / "arxiv"
PAGES = [ARX / f"arxivpy-q_testing_s{s}_m10.xml" for s in (0, 10, 20, 30, 40, 50)]
EMPTY = ARX / "arxivpy-id_0000.0000_s0_m100.xml"
# 2026-W24, Monday to Sunday: the arXiv day -> the recorded pages served for it.
WEEK = "2026-W24"
MONDAY = date(2026, 6, 8)
ARXIV_WEEK = {
    MONDAY: PAGES,  # six full pages of 10: paging
    MONDAY + timedelta(1): [ARX / "arxivpy-id_1605.08386_s0_m100.xml"],
    MONDAY + timedelta(2): [ARX / "arxivpy-id_0808.05394_1707.08567_s0_m100.xml"],
    MONDAY + timedelta(3): [ARX / "sotawhat-transformer-cs.LG.xml"],
    MONDAY + timedelta(4): [ARX / "arxivpy-id_1707.08567_s0_m100.xml"],  # 1707.08567 again
    MONDAY + timedelta(5): [EMPTY],
    MONDAY + timedelta(6): [EMPTY],
}
_STAMP = re.compile(r"submittedDate:\[(\d{8})")


def hf_for(day: date) -> Path:
    """The recording served for an HF day of the test week (the two alternate)."""
    return HF_FILES[day.toordinal() % 2]


def hf_ids(days: list[date]) -> set[str]:
    ids = set()
    for day in days:
        ids |= {item["paper"]["id"] for item in json.loads(hf_for(day).read_text("utf-8"))}
    return ids


def arxiv_ids(days: list[date]) -> set[str]:
    ids = set()
    for day in days:
        for page in ARXIV_WEEK[day]:
            text = page.read_text("utf-8")
            ids |= {
                m.rsplit("v", 1)[0]
                for m in re.findall(r"<id>http://arxiv.org/abs/(.+?)</id>", text)
            }
    return ids


class Replay:
    """Routes for /api/daily_papers and /api/query; `faults` maps a day to a fault name."""

    def __init__(self, server) -> None:
        self.server = server
        self.faults: dict[date, str] = {}
        self.seen: Counter = Counter()
        self.hang = threading.Event()
        server.expect_request("/api/daily_papers").respond_with_handler(self._hf)
        server.expect_request("/api/query").respond_with_handler(self._arxiv)

    @property
    def base(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def requests(self, path: str) -> int:
        return sum(1 for req, _ in self.server.log if req.path == path)

    def _fault(self, day: date, body: bytes, ctype: str) -> Response | None:
        fault = self.faults.get(day)
        if fault is None:
            return None
        self.seen[(day, fault)] += 1
        if fault == "429-once" and self.seen[(day, fault)] == 1:
            return Response("slow down", status=429, headers={"Retry-After": "0"})
        if fault == "503-long":
            return Response("busy", status=503, headers={"Retry-After": "3600"})
        if fault == "cut":
            return Response(body[: len(body) // 2], content_type=ctype)
        if fault == "hang":
            self.hang.wait(3)
            return Response(body, content_type=ctype)
        return None

    def _hf(self, request: Request) -> Response:
        day = date.fromisoformat(request.args["date"])
        body = hf_for(day).read_bytes()
        return self._fault(day, body, "application/json") or Response(
            body, content_type="application/json"
        )

    def _arxiv(self, request: Request) -> Response:
        stamp = _STAMP.search(request.args["search_query"]).group(1)
        day = date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:]))
        pages = ARXIV_WEEK[day]
        index = int(request.args.get("start", 0)) // max(1, int(request.args["max_results"]))
        # Past the recorded pages: arXiv's real answer with no entries, which ends the paging.
        body = (pages[index] if index < len(pages) else EMPTY).read_bytes()
        fault = self.faults.get(day, "")
        if fault.startswith("cut@"):  # one page of the day cut short, the others whole
            if int(fault[4:]) == int(request.args.get("start", 0)):
                self.faults.pop(day)
                return Response(body[: len(body) // 2], content_type="application/atom+xml")
            return Response(body, content_type="application/atom+xml")
        return self._fault(day, body, "application/atom+xml") or Response(
            body, content_type="application/atom+xml"
        )


def wait_for(predicate, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False
