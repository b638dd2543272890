"""Step 2: themes from the papers' embeddings, their coherence, and the trend.

Each paper's vector is the mean of its chunk vectors (stored with the paper).
Ward hierarchical clustering from SciPy gives themes of comparable size
(average linkage on these embeddings splits off a couple of outliers and
leaves one giant theme); the number of themes is the one with the best
silhouette among those that keep themes readable.

Ward puts every paper somewhere, so a paper whose mean similarity to the
other papers of its theme is below `MEMBER_MIN` leaves it: for the theme it
is closest to if that one clears the bar, else for "Other papers", instead of
being forced into a theme it does not belong to; a theme left with one paper
joins "Other papers" too. Coherence is reported as the mean silhouette of
each theme's papers and of the window's themed papers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .data import DigestPaper, Theme

if TYPE_CHECKING:
    import numpy as np

MAX_THEMES = 20
THEME_MAX_AVG = 12
THEME_MIN_AVG = 3
# A paper stays in a theme while its mean cosine similarity to the theme's
# other papers is at least this. all-MiniLM-L6-v2 puts any two ML abstracts at
# 0.31 (median pair of the sample's 2024 window; 90th percentile 0.48), papers
# on one topic at 0.53-0.77 (scaling laws, jailbreaks, diffusion guidance,
# audio captioning/dubbing, galactic metallicity), unrelated neighbours at
# 0.39-0.56 (bench/digest_bench.py --coherence prints these).
MEMBER_MIN = 0.50
# A themed paper this far from its theme's centre (cosine, the centre computed
# without it) counts as "far" in `assistant eval digest`.
FAR_SIMILARITY = 0.45
# A window this large is a map, not a list: themes come from Ward's tree cut
# into centroid themes (BERTopic's recipe: embeddings -> clustering -> outlier
# reduction), grouped into areas. Below it the member-pruned themes above stand.
LARGE_WINDOW = 120
LARGE_THEME_AVG = 40  # papers per theme a large window aims at (fewer calls, a readable map)
LARGE_MAX_THEMES = 28
LARGE_MIN_THEME = 6  # a centroid theme smaller than this dissolves into its neighbours
# Outlier reduction: a paper joins the theme whose centre is nearest if its
# cosine similarity to that centre is at least this, else "Other papers". It
# is `FAR_SIMILARITY`, the bar `assistant eval digest` calls a themed paper
# "far" at. On 2025-W47 (1,026 papers, all-MiniLM-L6-v2) it leaves 4.7% under
# "Other papers" (0.35: 1.2%, 0.40: 2.5%).
CENTRE_MIN = FAR_SIMILARITY
AREA_MIN_THEMES = 6  # fewer themes than this read fine without areas


def cluster(vectors: np.ndarray, max_themes: int = MAX_THEMES) -> list[int]:
    """Theme label per paper, numbered by first appearance (stable order).

    The number of themes is the one with the best silhouette among those that
    keep themes on average between `THEME_MIN_AVG` and `THEME_MAX_AVG` papers.
    """
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage

    n = len(vectors)
    if n <= 3:
        return [0] * n
    tree = linkage(vectors, method="ward", metric="euclidean")
    distances = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0)
    k_lo = min(max_themes, max(2, math.ceil(n / THEME_MAX_AVG)))
    k_hi = min(max_themes, max(k_lo, n // THEME_MIN_AVG))
    best_labels, best_score = [0] * n, -2.0
    for k in range(k_lo, k_hi + 1):
        labels = fcluster(tree, t=k, criterion="maxclust")
        score = float(silhouette_samples(distances, labels).mean())
        if score > best_score + 1e-6:
            best_labels, best_score = list(labels), score
    order: dict[int, int] = {}
    return [order.setdefault(label, len(order)) for label in best_labels]


def silhouette_samples(distances: np.ndarray, labels: Any) -> np.ndarray:
    """Silhouette of each point (singletons score 0, as in scikit-learn), vectorised.

    With fewer than two groups, or every point alone, every score is -1: such a
    split says nothing about coherence.
    """
    import numpy as np

    labels = np.asarray(labels)
    unique, index = np.unique(labels, return_inverse=True)
    if len(unique) < 2 or len(unique) >= len(labels):
        return np.full(len(labels), -1.0)
    onehot = np.zeros((len(labels), len(unique)))
    onehot[np.arange(len(labels)), index] = 1.0
    sizes = onehot.sum(axis=0)
    sums = distances @ onehot  # distance from each point to each cluster, summed
    own = sizes[index]
    a = sums[np.arange(len(labels)), index] / np.maximum(own - 1, 1)
    means = sums / sizes
    means[np.arange(len(labels)), index] = np.inf
    b = means.min(axis=1)
    return np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)


def _unit(matrix: np.ndarray) -> np.ndarray:
    import numpy as np

    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def centre_similarities(vectors: np.ndarray, labels: list[int]) -> np.ndarray:
    """Cosine similarity of each paper to each group's centre, its own centre
    computed without it (so a paper alone in its group scores -1 there)."""
    import numpy as np

    labels_ = np.asarray(labels)
    groups = sorted(set(labels))
    sums = np.stack([vectors[labels_ == g].sum(axis=0) for g in groups])
    counts = np.array([(labels_ == g).sum() for g in groups])
    sims = np.empty((len(vectors), len(groups)))
    for j, g in enumerate(groups):
        mine = labels_ == g
        centre = _unit(sums[j][None, :])[0]
        sims[:, j] = vectors @ centre
        if mine.any():
            rest = sums[j][None, :] - vectors[mine]
            alone = counts[j] == 1
            loo = np.einsum("ij,ij->i", _unit(rest), vectors[mine])
            sims[mine, j] = -1.0 if alone else loo
    return sims


def group(
    papers: list[DigestPaper], member_min: float = MEMBER_MIN
) -> tuple[list[Theme], float | None]:
    """Themes (largest first, then "Other papers" if any) and the window's silhouette.

    A small window keeps Ward's member-pruned themes; from `LARGE_WINDOW` papers
    on, centroid themes with outlier reduction (`_group_large`).
    """
    if len(papers) >= LARGE_WINDOW:
        return _group_large(papers)
    return _group_small(papers, member_min)


def _group_large(papers: list[DigestPaper]) -> tuple[list[Theme], float | None]:
    """BERTopic's recipe on what is installed: Ward's tree over the embeddings cut
    into about n / `LARGE_THEME_AVG` clusters, clusters under `LARGE_MIN_THEME`
    papers dissolved, then a few rounds of nearest-centre assignment (outlier
    reduction: a paper joins the nearest centre at `CENTRE_MIN` or above, else
    "Other papers"). The last round is the rule: `assign` applies it unchanged to
    the previous window, so trends compare like with like.
    """
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage

    vectors = _unit(np.stack([p.vector for p in papers]).astype(np.float64))
    n = len(papers)
    k = max(2, min(LARGE_MAX_THEMES, round(n / LARGE_THEME_AVG)))
    tree = linkage(vectors, method="ward", metric="euclidean")
    labels = np.asarray(fcluster(tree, t=k, criterion="maxclust")) - 1
    centres = np.empty((0, vectors.shape[1]))
    for _ in range(6):
        groups = [g for g in np.unique(labels) if g >= 0]
        sizes = {g: int((labels == g).sum()) for g in groups}
        keep = [g for g in groups if sizes[g] >= LARGE_MIN_THEME] or groups[:1]
        centres = _unit(np.stack([vectors[labels == g].mean(axis=0) for g in keep]))
        new = _nearest(vectors, centres)
        if np.array_equal(new, labels):
            break
        labels = new
    labels = _nearest(vectors, centres)
    # A centre that won fewer than LARGE_MIN_THEME papers in the last round goes.
    counts = np.bincount(labels[labels >= 0], minlength=len(centres))
    if (counts < LARGE_MIN_THEME).any():
        centres = centres[counts >= LARGE_MIN_THEME]
        labels = _nearest(vectors, centres)
    return _themes_of(papers, vectors, [int(x) for x in labels], "centre")


def _nearest(vectors: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The nearest centre of each vector, or -1 when it is below `CENTRE_MIN`."""
    import numpy as np

    sims = vectors @ centres.T
    best = sims.argmax(axis=1)
    return np.where(sims[np.arange(len(vectors)), best] >= CENTRE_MIN, best, -1)


def assign(themes: list[Theme], vector: np.ndarray) -> Theme | None:
    """The theme a paper belongs to under the rule its themes were made by, or None.

    "centre": the nearest theme centre at `CENTRE_MIN` or above (a large window);
    "members": the highest mean similarity to a theme's papers at `MEMBER_MIN`
    or above (the rule that re-homes a pruned paper in a small window).
    """
    import numpy as np

    named = [t for t in themes if not t.other]
    if not named:
        return None
    v = _unit(np.asarray(vector, dtype=np.float64)[None, :])[0]
    if named[0].rule == "centre":
        sims = [float(t.centre @ v) for t in named]
        floor = CENTRE_MIN
    else:
        sims = [float(np.mean([_unit(p.vector[None, :])[0] @ v for p in t.papers])) for t in named]
        floor = MEMBER_MIN
    best = int(np.argmax(sims))
    return named[best] if sims[best] >= floor else None


def _group_small(
    papers: list[DigestPaper], member_min: float = MEMBER_MIN
) -> tuple[list[Theme], float | None]:
    """Member-pruned Ward themes of a small window.

    Ward's themes are pruned: while some member's mean similarity to the other
    members of its theme is below `member_min`, the worst one leaves; it joins
    the theme it is closest to on average if that clears the bar, else "Other
    papers". A theme left with one paper joins "Other papers" too.
    """
    import numpy as np

    if not papers:
        return [], None
    vectors = np.stack([p.vector for p in papers]).astype(np.float64)
    vectors = _unit(vectors)
    sims = vectors @ vectors.T
    labels = cluster(vectors)
    other = -1
    for _ in range(len(papers)):
        worst, worst_score = None, member_min
        for lab in set(labels) - {other}:
            idx = [i for i, x in enumerate(labels) if x == lab]
            if len(idx) < 2:
                continue
            block = sims[np.ix_(idx, idx)]
            means = (block.sum(axis=1) - 1.0) / (len(idx) - 1)
            j = int(np.argmin(means))
            if means[j] < worst_score:
                worst, worst_score = idx[j], float(means[j])
        if worst is None:
            break
        labels[worst] = other
        best_lab, best_mean = other, member_min
        for lab in set(labels) - {other}:
            idx = [i for i, x in enumerate(labels) if x == lab]
            if len(idx) >= 2 and (mean := float(sims[worst, idx].mean())) >= best_mean:
                best_lab, best_mean = lab, mean
        labels[worst] = best_lab
    for lab in set(labels) - {other}:
        if labels.count(lab) < 2:
            labels = [other if x == lab else x for x in labels]

    return _themes_of(papers, vectors, labels, "members")


def _themes_of(
    papers: list[DigestPaper], vectors: np.ndarray, labels: list[int], rule: str
) -> tuple[list[Theme], float | None]:
    """Themes from labels (-1 = "Other papers"), largest first, with their silhouettes."""
    import numpy as np

    other = -1
    themed = [i for i, lab in enumerate(labels) if lab != other]
    scores = np.zeros(len(papers))
    window: float | None = None
    if len({labels[i] for i in themed}) >= 2:
        sub = vectors[themed]
        distances = np.clip(1.0 - sub @ sub.T, 0.0, 2.0)
        scores[themed] = silhouette_samples(distances, [labels[i] for i in themed])
        window = float(scores[themed].mean())
    members: dict[int, list[int]] = {}
    for i, lab in enumerate(labels):
        members.setdefault(lab, []).append(i)
    themes = []
    for lab, idx in members.items():
        if lab == other:
            continue
        theme = Theme("", [papers[i] for i in idx], rule=rule)
        theme.centre = _unit(vectors[idx].mean(axis=0)[None, :])[0]
        theme.silhouette = float(scores[idx].mean()) if window is not None else None
        themes.append(theme)
    themes.sort(key=lambda t: -len(t.papers))
    if other in members:
        themes.append(
            Theme("Other papers", [papers[i] for i in members[other]], other=True, rule=rule)
        )
    return themes, window


def compare_with_previous(themes: list[Theme], previous: list[DigestPaper]) -> int:
    """Assign each previous-window paper to this window's themes by `assign`, the
    rule that made them; return how many fall under none (so the theme counts
    and that number add up to the previous window's total)."""
    named = [t for t in themes if not t.other]
    for theme in named:
        theme.previous = 0
    outside = 0
    for paper in previous:
        home = assign(themes, paper.vector)
        if home is None:
            outside += 1
        else:
            home.previous += 1
    for theme in named:
        now = len(theme.papers)
        # Within a tenth (or one paper) is "steady": noise, not a trend.
        slack = max(1, round(0.1 * max(now, theme.previous)))
        theme.status = (
            "new"
            if theme.previous == 0
            else "steady"
            if abs(now - theme.previous) <= slack
            else "grew"
            if now > theme.previous
            else "shrank"
        )
    return outside


def central_order(theme: Theme) -> list[DigestPaper]:
    """The theme's papers, closest to its centre first (who the prose should compare)."""
    import numpy as np

    vectors = np.stack([p.vector for p in theme.papers])
    centre = _unit(vectors.mean(axis=0)[None, :])[0]
    sims = vectors @ centre
    order = sorted(range(len(theme.papers)), key=lambda i: -float(sims[i]))
    return [theme.papers[i] for i in order]


def make_areas(themes: list[Theme]) -> list[list[Theme]]:
    """The named themes of a large window grouped into a few areas (Ward over the
    theme centres, about the square root of the number of themes), largest
    area first; no areas below `AREA_MIN_THEMES` themes or in a small window."""
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage

    named = [t for t in themes if not t.other]
    if len(named) < AREA_MIN_THEMES or named[0].rule != "centre":
        return []
    k = max(2, min(7, round(math.sqrt(len(named)))))
    centres = np.stack([t.centre for t in named])
    labels = fcluster(linkage(centres, method="ward"), t=k, criterion="maxclust")
    areas: dict[int, list[Theme]] = {}
    for theme, label in zip(named, labels):
        areas.setdefault(int(label), []).append(theme)
    return sorted(areas.values(), key=lambda a: -sum(len(t.papers) for t in a))
