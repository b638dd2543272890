"""Step 3: theme names from the theme's own papers.

The name is made of the theme's most distinctive key phrases against the rest
of the window, scored like c-TF-IDF (BERTopic's class-based TF-IDF): a
phrase's frequency in the theme's titles and abstracts (titles count three
times) times log(1 + A / its frequency in the whole window), A being the
average number of words per theme. Candidates are runs of one to three words
that contain no stop word or generic research word, so a phrase reads as a
phrase ("speculative decoding", "KV cache").

A model may propose a name, but it is used only when `valid_name` accepts it:
short, no brackets or numbering, and every content word found in the theme's
papers. Small models write "Themes: [1] AdAdaGrad" or invent words; the
key-phrase name then stands. `assistant eval digest` applies the same rule.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict

from ..text import STOPWORDS, content_words
from .data import DigestPaper, Theme

MAX_NAME_WORDS = 6
MAX_NAME_CHARS = 60
TITLE_WEIGHT = 3
# Words that say nothing about what a theme is about, on top of citations' stop words.
GENERIC = frozenset(
    """
achieve achieves achieved achieving across address addresses aim allow allows art available
benchmark benchmarks better case cases challenge challenges challenging common compared
comparable comprehensive consider current data dataset datasets demonstrate demonstrates
design designed different effective effectively efficient enable enables enhance enhanced
evaluate evaluated evaluation existing experiment experiments extensive first framework
frameworks further given good help high higher however important improve improved improves
improvement improvements including introduce introduces introduced issue key large-scale lead
leading leverage leverages limited low lower make makes many may model models much need
needs number one outperform outperforms overall performance performs perform possible problem
problems provide provides range real recent remains research significant significantly
simple several state state-of-the-art strong superior support task tasks technique
techniques three two typically well wide widely yet able various specific process
aims aim strategy strategies study studies enhancing enhances understanding analysis quality
insight insights trained train learning learn learned neural network networks novel
approaches towards toward back part making make rethinking unraveling mystery boosting
investigating exploring quantifying eliminating refining effects effect role cost-effective
baseline baselines automatic similarity value values level levels way ways end even likely
often still without within across among generate generated generating produce produces
lead leads yields yield obtain obtained found find finds shown well-known known particular
""".split()
)
GENERIC = GENERIC | frozenset(
    """
training accuracy accurate robust robustness capabilities capability applications application
information set sets feature features algorithm algorithms pipeline right system systems
human humans text complex multiple findings integrate integrates integrating evaluating
traditional region regions access representation representations semantic semantics
architecture architectures structure structures critical user users across recent
""".split()
)
# Generic head nouns that may end a phrase but never stand alone.
TAIL = frozenset(
    "learning model models understanding network networks system systems analysis".split()
)
# Words that name no theme on their own in any ML window, whatever their share.
BROAD = frozenset(
    "ai artificial intelligence llm llms mllm mllms vlm vlms large language model models "
    "multimodal machine deep neural learning data natural".split()
)
# Adjectives modify a theme's noun; after "and" they read as a fragment ("Motion and
# temporal", "Prediction and diagnostic").
_ADJECTIVE = re.compile(r"(?:al|ic|ical|ive|ous|ary|ful|less|able|ible)$", re.IGNORECASE)
_NOT_ADJECTIVES = frozenset("signal animal interval proposal retrieval survival rival".split())


def _adjective(word: str) -> bool:
    low = word.lower()
    return bool(_ADJECTIVE.search(low)) and low not in _NOT_ADJECTIVES and len(low) > 4


_DIMENSION = re.compile(r"[1-4]d")  # "3D", "2D": a topic word, not a figure
COMMON_SHARE = 0.20  # a word in more of the window's papers than this is too common to name
# Words, and figures as their own tokens so a phrase never runs across a number.
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9\-]*[A-Za-z0-9]|[A-Za-z]|\d[\d.,]*[A-Za-z%]*")
_BRACKETS = re.compile(r"[\[\]{}()<>]")
_NUMBERING = re.compile(
    r"^\s*(?:\d+\s*[.):]|#|[-*•]\s)|\b(?:themes?|names?|titles?)\s*:", re.IGNORECASE
)


def _norm(word: str) -> str:
    word = word.lower()
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    return word


def _stop(word: str) -> bool:
    low = word.lower()
    return (
        low in STOPWORDS
        or low in GENERIC
        or _norm(low) in GENERIC
        or (len(low) < 3 and not word.isupper())
        or (low[0].isdigit() and not _DIMENSION.fullmatch(low))
    )


def phrases(text: str, longest: int = 3) -> list[tuple[tuple[str, ...], str]]:
    """Candidate phrases of a text as (normalised words, surface form)."""
    found = []
    for segment in re.split(r"(?<!\d)[.,](?!\d)|[;:!?()\[\]{}\"“”]|\s[-–—]\s", text):
        run: list[str] = []
        after_figure = False  # "0.1 dex kpc": units, not a topic
        for token in _TOKEN.findall(segment) + [""]:
            if token and not _stop(token):
                run.append(token)
                continue
            if run and not after_figure and token.lower() in TAIL:
                # "Large Language Models", "Agent Reinforcement Learning": a generic
                # head noun closes a phrase, so the phrase is not cut to a fragment.
                for size in range(1, longest):
                    if size <= len(run):
                        words = run[-size:] + [token]
                        found.append((tuple(_norm(w) for w in words), " ".join(words)))
            if not after_figure:
                for size in range(1, longest + 1):
                    for i in range(len(run) - size + 1):
                        words = run[i : i + size]
                        found.append((tuple(_norm(w) for w in words), " ".join(words)))
            run = []
            after_figure = bool(token) and token[0].isdigit()
    return found


def _theme_counts(papers: list[DigestPaper]) -> tuple[Counter, dict, Counter]:
    """Weighted phrase counts, surface forms, and in how many papers each occurs."""
    counts: Counter = Counter()
    surfaces: dict[tuple[str, ...], Counter] = defaultdict(Counter)
    papers_with: Counter = Counter()
    for paper in papers:
        seen = set()
        for weight, text in ((TITLE_WEIGHT, paper.title), (1, paper.abstract)):
            for key, surface in phrases(text):
                counts[key] += weight
                surfaces[key][surface] += 1
                seen.add(key)
        papers_with.update(seen)
    return counts, surfaces, papers_with


def key_phrases(
    themes: list[Theme], top: int = 5, common: set[str] | None = None
) -> list[list[str]]:
    """The `top` most distinctive phrases of each theme against the whole window;
    in a large window (`common` given) a phrase made only of its common words or
    `BROAD` ones is no key phrase."""
    common = (common | BROAD) if common else set()
    stats = [_theme_counts(t.papers) for t in themes]
    total: Counter = Counter()
    for counts, _, _ in stats:
        total.update(counts)
    average = sum(total.values()) / max(1, len(themes))
    result = []
    for theme, (counts, surfaces, papers_with) in zip(themes, stats):
        need = 2 if len(theme.papers) >= 2 else 1
        scored = []
        for key, tf in counts.items():
            if papers_with[key] < need or (common and all(w in common for w in key)):
                continue
            score = tf * math.log(1 + average / total[key]) * (1 + 0.6 * (len(key) - 1))
            score *= papers_with[key] / len(theme.papers)
            scored.append((score, key))
        if not scored and need > 1:
            scored = [(tf * math.log(1 + average / total[k]), k) for k, tf in counts.items()]
        scored.sort(key=lambda s: (-s[0], s[1]))
        # A phrase gives way to a longer one that holds it and is nearly as frequent:
        # "scaling" and "law" to "scaling law".
        longer = [(k, counts[k]) for _, k in scored if len(k) > 1]
        chosen: list[tuple[str, ...]] = []
        for _, key in scored:
            if any(set(key) < set(k) and c >= 0.5 * counts[key] for k, c in longer):
                continue
            if any(set(key) <= set(c) or set(c) <= set(key) for c in chosen):
                continue  # "decoding" adds nothing next to "speculative decoding"
            chosen.append(key)
            if len(chosen) == top:
                break
        if len(chosen) >= 2 and len(chosen[0]) == len(chosen[1]) == 1:
            # Two single words that the papers also write side by side read as one
            # phrase: "adversarial" and "attacks" -> "adversarial attacks".
            pair = [k for k in ((chosen[0] + chosen[1]), (chosen[1] + chosen[0])) if k in counts]
            if pair:
                chosen = [max(pair, key=lambda k: counts[k])] + chosen[2:]
        result.append([_surface(surfaces[k]) for k in chosen])
    return result


def _surface(forms: Counter) -> str:
    """The most frequent spelling, preferring one that is not all lower case when tied."""
    return sorted(forms.items(), key=lambda f: (-f[1], f[0].islower(), f[0]))[0][0]


def _capital(phrase: str) -> str:
    return phrase[:1].upper() + phrase[1:] if phrase[:1].islower() else phrase


def phrase_name(phrases_: list[str], taken: set[str], common: set[str] | None = None) -> str:
    """A name of two to five words from the theme's key phrases (best first).

    The name is the best phrase that shares no word sequence with a name
    already given ("Video generation" vs "Video generation models": one
    inside the other) and holds a word that is not `common` in the window (a
    word in most papers, such as "language" in a week of LLM papers, names
    nothing); a single word is joined to the next such phrase ("Jailbreak and
    red teaming").
    """
    common = common or set()

    def usable(phrase: str) -> bool:
        low = phrase.lower()
        if any(_inside(low, t) or _inside(t, low) for t in taken):
            return False
        return any(_norm(w) not in common and _norm(w) not in BROAD for w in low.split())

    choices = [p for p in phrases_ if usable(p)]
    # A phrase of two to four words among the first few reads as a name by itself
    # ("Gaussian splatting", "Autonomous driving").
    for phrase in choices[:3]:
        if 2 <= len(phrase.split()) <= 4:
            return _capital(phrase)
    for i, first in enumerate(choices):
        for second in choices[i + 1 :]:
            if _related(first, second) or (
                len(second.split()) == 1 and _adjective(second) and not _adjective(first)
            ):
                continue  # "Emotion and emotional", "Motion and temporal"
            joined = f"{_capital(first)} and {second}"
            if len(joined.split()) <= 5 and len(joined) <= MAX_NAME_CHARS:
                return joined
        return _capital(first)
    return _capital(phrases_[0]) if phrases_ else "Untitled theme"


def _related(a: str, b: str) -> bool:
    """Whether two phrases share a word stem (its first five letters)."""
    stems = {w.lower()[:5] for w in a.split()}
    return any(w.lower()[:5] in stems for w in b.split())


def _inside(short: str, long: str) -> bool:
    """Whether the words of `short` occur as a run in `long` (word-level, plural-blind)."""
    a = [_norm(w) for w in short.split()]
    b = [_norm(w) for w in long.split()]
    return bool(a) and any(b[i : i + len(a)] == a for i in range(len(b) - len(a) + 1))


def common_words(papers: list[DigestPaper], share: float = COMMON_SHARE) -> set[str]:
    """Words (normalised) in more than `share` of the window's papers: too common
    to name a theme on their own."""
    if len(papers) < 60:
        return set()
    seen: Counter = Counter()
    for paper in papers:
        seen.update({_norm(w) for w in _TOKEN.findall(f"{paper.title} {paper.abstract}")})
    return {w for w, c in seen.items() if c > share * len(papers)}


def clean_model_name(raw: str) -> str:
    """The first line of the model's reply without decoration (quotes, "Name:", a final dot)."""
    lines = [line for line in raw.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    name = lines[0].strip().strip("\"'*#`").strip()
    name = re.sub(
        r"^(?:the\s+)?(?:theme|name)\s*(?:name)?\s*[:\-–]\s*", "", name, flags=re.IGNORECASE
    )
    name = re.sub(
        r"^the (?:common )?theme of (?:these|the) papers is\s*:?\s*", "", name, flags=re.IGNORECASE
    )
    return name.strip().strip("\"'*`").rstrip(".").strip()


def valid_name(name: str, papers: list[DigestPaper]) -> tuple[bool, str]:
    """Whether `name` is an acceptable theme name for these papers, and why not."""
    words = name.split()
    if not words:
        return False, "empty"
    if len(words) > MAX_NAME_WORDS or len(name) > MAX_NAME_CHARS:
        return False, f"longer than {MAX_NAME_WORDS} words or {MAX_NAME_CHARS} characters"
    if _BRACKETS.search(name) or _NUMBERING.search(name) or re.search(r"\d+\s*[.)]\s", name):
        return False, "has brackets or numbering"
    wanted = content_words(name)
    if not wanted:
        return False, "no content word"
    have = set().union(*(content_words(f"{p.title} {p.abstract}") for p in papers))
    missing = sorted(wanted - have)
    if missing:
        return False, f"words not in the theme's papers: {', '.join(missing)}"
    return True, ""


def name_themes(themes: list[Theme], areas: list[list[Theme]] | None = None) -> list[str]:
    """Key phrases and a key-phrase name for every named theme (the model may
    replace it); the names of `areas` (groups of themes) from their own key
    phrases against each other, distinct from every theme's name."""
    named = [t for t in themes if not t.other]
    everyone = named + [t for t in themes if t.other]  # Other papers count as "the rest"
    common = common_words([p for t in themes for p in t.papers])
    found = key_phrases(everyone, top=8, common=common)
    taken: set[str] = set()
    for theme, phrases_ in zip(everyone, found):
        if theme.other:
            continue
        theme.key_phrases = phrases_
        theme.name = phrase_name(phrases_, taken, common)
        theme.name_source = "key phrases"
        taken.add(theme.name.lower())
    area_names = []
    if areas:
        pooled = [Theme("", [p for t in area for p in t.papers]) for area in areas]
        # An area is broad by nature: its words may be the window's common ones
        # ("visual", "agents"), only not the ones every ML paper uses (`BROAD`).
        for area, phrases_ in zip(areas, key_phrases(pooled, top=15, common=set(BROAD))):
            name = phrase_name(phrases_, taken, set())
            taken.add(name.lower())
            area_names.append(name)
            for theme in area:
                theme.area = name
    return area_names


def accept_model_name(theme: Theme, raw: str, taken: set[str]) -> None:
    """Use the model's proposal if it passes `valid_name` and no other theme has it."""
    proposal = clean_model_name(raw)
    theme.model_name = proposal
    ok, _ = valid_name(proposal, theme.papers)
    # A title, or a title's head ("Scaling Laws: Part I"), names one paper, not a theme.
    one_paper = ":" in proposal or any(
        proposal.lower() in (p.title.lower(), p.title.split(":")[0].strip().lower())
        for p in theme.papers
    )
    low = proposal.lower()
    distinct = not any(_inside(low, t) or _inside(t, low) for t in taken)
    if ok and not one_paper and 2 <= len(proposal.split()) <= 5 and distinct:
        theme.name = proposal
        theme.name_source = "model"
