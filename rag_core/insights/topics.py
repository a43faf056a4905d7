"""Topics among questions: cluster their embeddings, then name each cluster by its most telling words.

Why these methods: the questions HR needs grouped are few (the refused and weakly grounded ones of a
month or so), so average-linkage agglomerative clustering with a cosine threshold is affordable
(quadratic memory, a few hundred merges), needs no number of topics up front and is deterministic: the
same log gives the same topics. A cluster is named by class-based TF-IDF: words frequent in its
questions and rare across all logged questions, stopwords dropped, word forms folded by their stem
(pet, pets) and shown as the cluster spells them most.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from rag_core.types import FloatArray

# Average cosine between two groups of questions above which they are one topic (MiniLM query vectors:
# paraphrases of one need score ~0.5-0.8, questions about unrelated matters below ~0.3).
TOPIC_SIMILARITY = 0.4
MAX_CLUSTERED = 1000  # newest uncovered questions clustered; older ones are left out of the topics
_WORD = re.compile(r"[^\W\d_][\w'-]*[^\W_]|[^\W\d_]")
_STOPWORDS_TEXT = """
    a about above after again all also am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further get gets got had has have
    having he her here hers him his how i if in into is it its itself just let me more most my myself no nor
    not now of off on once only or other our ours out over own same she should so some such than that the
    their theirs them then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself i'm i've can't don't
    there's what's it's company employee employees work please tell know
"""
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def cluster(vectors: FloatArray, threshold: float = TOPIC_SIMILARITY) -> list[list[int]]:
    """Average-linkage clusters of unit vectors whose mean pairwise cosine is at least `threshold`;
    each a list of row indices in order, the clusters ordered by their first row.

    >>> v = np.array([[1, 0], [0.96, 0.28], [0, 1], [0.28, 0.96]], dtype=np.float32)
    >>> cluster(v, 0.8)
    [[0, 1], [2, 3]]
    >>> cluster(v, 0.1)
    [[0, 1, 2, 3]]
    """
    n = len(vectors)
    if n == 0:
        return []
    sim = (vectors @ vectors.T).astype(np.float64)
    np.fill_diagonal(sim, -np.inf)
    members: list[list[int]] = [[i] for i in range(n)]
    alive = np.ones(n, dtype=bool)
    while alive.sum() > 1:
        flat = int(np.argmax(sim))
        a, b = divmod(flat, n)
        if sim[a, b] < threshold:
            break
        a, b = min(a, b), max(a, b)
        na, nb = len(members[a]), len(members[b])
        merged = (sim[a] * na + sim[b] * nb) / (na + nb)  # Lance-Williams, average linkage
        sim[a], sim[:, a] = merged, merged
        sim[a, a] = -np.inf
        sim[b], sim[:, b] = -np.inf, -np.inf
        members[a] += members[b]
        members[b] = []
        alive[b] = False
    return [sorted(m) for m in members if m]


def words(text: str) -> list[str]:
    """The content words of a text, lower-cased, stopwords dropped.

    >>> words("Can I bring my dog to the office?")
    ['bring', 'dog', 'office']
    """
    return [w for w in (m.lower() for m in _WORD.findall(text)) if len(w) > 2 and w not in _STOPWORDS]


def _stems(tokens: list[str]) -> list[str]:
    try:
        import Stemmer

        stemmer: Any = Stemmer.Stemmer("english")
        return [str(s) for s in stemmer.stemWords(tokens)]
    except ImportError:  # pragma: no cover - PyStemmer comes with the lexical index; plain words still work
        return list(tokens)


def topic_words(groups: Sequence[Sequence[str]], background: Sequence[str], n: int = 3) -> list[list[str]]:
    """The `n` most telling words of each group of texts against all texts (`background`, the groups'
    texts among them): class-based TF-IDF, share of the group's texts using a word x log(1 + texts /
    texts using it anywhere).

    >>> bg = ["where can I park", "parking permit cost", "can I bring my dog", "are pets allowed", "my payslip"]
    >>> topic_words([bg[:2], bg[2:4]], bg, n=2)
    [['park', 'cost'], ['allowed', 'bring']]
    """
    docs = [set(_stems(words(t))) for t in background]
    df = Counter(s for d in docs for s in d)
    total = max(len(docs), 1)
    out: list[list[str]] = []
    for texts in groups:
        spelled: dict[str, Counter[str]] = {}
        tf: Counter[str] = Counter()
        for text in texts:
            tokens = words(text)
            for token, stem in zip(tokens, _stems(tokens), strict=True):
                spelled.setdefault(stem, Counter())[token] += 1
            tf.update(set(_stems(tokens)))
        scores = {s: (c / len(texts)) * math.log(1 + total / max(df[s], 1)) for s, c in tf.items()}
        best = sorted(scores, key=lambda s: (-scores[s], s))[:n]
        out.append([spelled[s].most_common(1)[0][0] for s in best])
    return out
