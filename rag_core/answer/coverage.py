"""Do the documents cover this question? The decision behind "I could not find this".

Why more than the best passage's cosine: questions the documents do not answer often sit right next
to topics they do ("a paid day off on my birthday" next to the Sovereign's Birthday holiday), so their
best passage scores as high as many answerable questions' do. The judge reads three signals:

* best_sentence: the highest cosine of the question with one sentence (or table row) of the top
  passages, the candidates the extractive answer quotes from. A passage about the right topic that
  never says the asked-for thing scores lower per sentence than the passage that does; a whole
  chunk's vector blurs that.
* best_passage: the highest cosine of the question with a top passage (the old, single signal).
* unknown_share: the share of the question's content words that appear in no document at all
  ("dog", "tattoos", "ChatGPT"), scaled by how much language the documents hold (in one short policy
  most everyday words are absent: REFERENCE_VOCABULARY is the dev knowledge base's size).

A logistic model over them gives a confidence; the answer is refused below `min_coverage`. Which
signals it reads, its weights and the threshold are chosen on the dev set's 96 answerable and 24
uncovered questions by nested cross-validation (benchmarks/eval_refusal.py; never on single
questions): with table rows and scoping in place, the best sentence alone won on 4 of 5 training
splits (held-out: 0.42 of uncovered refused at 0.05 of answerable), so the shipped model weighs only
it, a threshold near a cosine of 0.49. The unknown words still name themselves in the refusal ("None
of them mentions “dog”"). The weights hold for the embedder they were fitted with (the bundled
MiniLM); `min_coverage=0` turns the model off and leaves only the `min_score` floor.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rag_core.answer.extractive import answer_candidates
from rag_core.answer.generators import Encode
from rag_core.lexical import TOKEN_PATTERN, tokenize
from rag_core.types import Coverage, Hit

# Words that make a question a question but say nothing of its topic. bm25s's English stop words keep
# them ("how", "many", "get", "my"), and a question is mostly made of them.
_QUESTION_WORDS = """
    how mani much what when where which who whom whi why can could do doe did get got me my mine our am is
    are was were will would should shall may might must own off i we us you your have has had there their
    they it its be been being any some if so just also still ever need want let anyon someon
"""
QUESTION_WORDS = frozenset(_QUESTION_WORDS.split())
REFERENCE_VOCABULARY = 7500  # BM25 tokens of the knowledge base the model was fitted on (rounded down)
PASSAGES = 5  # the top passages the signals read: as many as the model was fitted on


@dataclass(frozen=True)
class CoverageModel:
    """confidence = sigmoid(w_sentence * best_sentence + w_passage * best_passage
    + w_unknown * unknown_share + bias)."""

    w_sentence: float
    w_passage: float
    w_unknown: float
    bias: float

    def confidence(self, best_sentence: float, best_passage: float, unknown_share: float) -> float:
        z = self.w_sentence * best_sentence + self.w_passage * best_passage + self.w_unknown * unknown_share + self.bias
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


# Chosen and fitted on the dev set with the bundled MiniLM (benchmarks/eval_refusal.py prints these figures).
DEFAULT_MODEL = CoverageModel(w_sentence=16.36, w_passage=0.0, w_unknown=0.0, bias=-9.28)


def content_terms(question: str) -> list[tuple[str, str]]:
    """(word as written, its BM25 token) for the question's topic words, in order, once each.

    >>> content_terms("How many days off do I get for my dog's vet visits?")
    [('days', 'day'), ('dog', 'dog'), ('vet', 'vet'), ('visits', 'visit')]
    """
    words = re.findall(TOKEN_PATTERN, question)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for word, tokens in zip(words, tokenize(words), strict=True):
        for token in tokens:
            if token not in QUESTION_WORDS and token not in seen:
                seen.add(token)
                out.append((word, token))
    return out


class CoverageJudge:
    """Decides whether retrieved passages cover a question. Safe to share between threads.

    `encode` embeds the question and the passages' sentences (unit vectors); `vocabulary` returns the
    knowledge base's BM25 tokens (None: every word counts as known).
    """

    def __init__(
        self,
        encode: Encode,
        vocabulary: Callable[[], set[str]] | None,
        *,
        min_score: float,
        min_coverage: float,
        model: CoverageModel = DEFAULT_MODEL,
    ):
        if not 0.0 <= min_coverage <= 1.0:
            raise ValueError(f"min_coverage must be between 0 and 1 (a probability); got min_coverage={min_coverage}")
        self.encode = encode
        self.vocabulary = vocabulary
        self.min_score = min_score
        self.min_coverage = min_coverage
        self.model = model

    def judge(self, question: str, hits: Sequence[Hit]) -> Coverage:
        """The verdict on `hits` (best first) for `question`; no hits -> not covered."""
        top = list(hits[:PASSAGES])
        if not top:
            return Coverage(False, 0.0, 0.0, 0.0, 0.0)
        best_passage = max(h.score for h in top)
        terms = content_terms(question)
        known = self.vocabulary() if self.vocabulary is not None else None
        unknown = [word for word, token in terms if known is not None and token not in known]
        evidence = min(1.0, len(known) / REFERENCE_VOCABULARY) if known is not None else 0.0
        unknown_share = evidence * len(unknown) / len(terms) if terms else 0.0
        best_sentence = self._best_sentence(question, top) if self.min_coverage > 0 else best_passage
        confidence = self.model.confidence(best_sentence, best_passage, unknown_share)
        covered = best_passage >= self.min_score and (self.min_coverage == 0 or confidence >= self.min_coverage)
        return Coverage(covered, confidence, best_sentence, best_passage, unknown_share, unknown)

    def _best_sentence(self, question: str, hits: Sequence[Hit]) -> float:
        # The extractive answerer's own candidates (sentences, and table rows with their headers):
        # what the answer could quote, and, through the shared embedding memo, embedded once for both.
        sentences = [c.text for c in answer_candidates(hits)]
        if not sentences:
            return max(h.score for h in hits)
        vectors = self.encode([question, *sentences])
        return float(np.max(vectors[1:] @ vectors[0]))


FloatMatrix = npt.NDArray[np.float64]


def fit_model(features: FloatMatrix, covered: Sequence[bool], l2: float = 0.01, steps: int = 50) -> CoverageModel:
    """Logistic regression (Newton's method, L2 on the weights) with both classes weighed equally:
    uncovered questions are the few, and a model that ignores them refuses nothing.

    `features` has one row per question: (best_sentence, best_passage, unknown_share).
    """
    x = np.hstack([np.asarray(features, dtype=np.float64), np.ones((len(covered), 1))])
    y = np.asarray(covered, dtype=np.float64)
    if y.min() == y.max():
        raise ValueError("fitting the coverage model needs covered and uncovered questions both")
    weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    beta = np.zeros(x.shape[1])
    ridge = np.diag([l2] * (x.shape[1] - 1) + [0.0])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(x @ beta, -60, 60)))
        gradient = x.T @ (weight * (p - y)) + ridge @ beta
        hessian = (x * (weight * p * (1 - p))[:, None]).T @ x + ridge
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return CoverageModel(float(beta[0]), float(beta[1]), float(beta[2]), float(beta[3]))
