"""The Answerer: a question's hits -> a streamed, cited Answer, or a plain "not found".

It owns the generators (built once per spec and kept), the fallback to the extractive answerer when a
model or server cannot be used, and the refusal: when the coverage judge (rag_core.answer.coverage)
finds that the passages do not answer the question, the answer says the documents do not cover it,
and no language model is asked to improvise (users complain most that answers invent things).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence

from rag_core.answer.coverage import CoverageJudge
from rag_core.answer.extractive import ExtractiveGenerator
from rag_core.answer.generators import Encode, Generator, GeneratorUnavailable, parse_spec
from rag_core.answer.hf import HFGenerator
from rag_core.answer.openai import OpenAIGenerator
from rag_core.answer.prompt import NOT_FOUND
from rag_core.types import Answer, Citation, Coverage, Hit

_MARKER = re.compile(r"\[(\d{1,2})\]")


def make_generator(spec: str, encode: Encode, *, allow_downloads: bool = False) -> Generator:
    """The generator for `spec`; raises GeneratorUnavailable when its model or server cannot be used."""
    kind, arg = parse_spec(spec)
    if kind == "extractive":
        return ExtractiveGenerator(encode)
    if kind == "hf":
        return HFGenerator(arg, allow_downloads=allow_downloads)
    return OpenAIGenerator(arg)


class AnswerStream:
    """Iterate for the answer's text pieces; `answer` holds the complete Answer once iteration ends.

    Built by `answer_stream`; the chat page feeds it to `st.write_stream`, the CLI just drains it.
    """

    def __init__(
        self,
        question: str,
        generator: Generator,
        hits: Sequence[Hit] | None,
        judge: CoverageJudge | None,
        warning: str | None = None,
        query: str | None = None,
    ):
        self.question = question
        self.query = query or question  # what was retrieved with (a follow-up joined to its question)
        self.generator = generator
        self.hits = hits
        self.judge = judge  # None: answer whatever the passages are (benchmarks that score every answer)
        self.warning = warning
        self.answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        question, gen, hits = self.question, self.generator, self.hits
        coverage: Coverage | None = None
        if hits is not None and self.judge is not None:
            coverage = self.judge.judge(self.query, hits)
        if hits is not None and (not hits or (coverage is not None and not coverage.covered)):
            # Not covered: say so, and never let a model improvise.
            prompt, _ = gen.prepare(question, hits)
            text = refusal_text(coverage)
            self.answer = Answer(question, text, gen.name, False, [], list(hits), prompt, self.warning, coverage)
            yield text
            return
        prompt, kept = "", list[Hit]()
        parts: list[str] = []
        try:
            prompt, kept = gen.prepare(question, hits)
            for piece in gen.stream(question, kept if hits is not None else None):
                parts.append(piece)
                yield piece
        finally:
            text = "".join(parts).strip()
            self.answer = Answer(
                question,
                text,
                gen.name,
                grounded=hits is not None and bool(kept),
                citations=cited(text, kept),
                hits=list(hits or []),
                prompt=prompt,
                warning=self.warning,
                coverage=coverage,
            )

    def result(self) -> Answer:
        """Drain the stream (if not done yet) and return the Answer."""
        if self.answer is None:
            for _ in self:
                pass
        assert self.answer is not None
        return self.answer


def refusal_text(coverage: Coverage | None) -> str:
    """What the employee reads when the documents do not cover the question: the plain "not found",
    naming (up to three of) the question's words that no document contains, so "Can I bring my dog?"
    says why rather than leaving the employee to rephrase.

    >>> refusal_text(Coverage(False, 0.1, 0.3, 0.3, 0.5, ["dog"]))
    'I could not find this in the uploaded documents. None of them mentions “dog”.'
    """
    words = coverage.unknown_terms[:3] if coverage is not None else []
    if not words:
        return NOT_FOUND
    listed = ", ".join(f"“{w}”" for w in words[:-1]) + (" or " if len(words) > 1 else "") + f"“{words[-1]}”"
    return f"{NOT_FOUND} None of them mentions {listed}."


def cited(text: str, hits: Sequence[Hit]) -> list[Citation]:
    """Citations for the [n] markers in `text`, in first-mention order; out-of-range markers are ignored."""
    out: list[Citation] = []
    seen: set[int] = set()
    for m in _MARKER.finditer(text):
        n = int(m.group(1))
        if 1 <= n <= len(hits) and n not in seen:
            seen.add(n)
            h = hits[n - 1]
            out.append(Citation(n, h.document, h.page, h.chunk_id))
    return out


class Answerer:
    """Answers from hits with the generator a spec names. Safe to share between threads.

    `encode` embeds the extractive answerer's candidate sentences (and the judge's); it is only called
    when one answers.
    """

    def __init__(self, default_spec: str, encode: Encode, judge: CoverageJudge, *, allow_downloads: bool = False):
        parse_spec(default_spec)
        self.default_spec = default_spec
        self.judge = judge
        self._encode = encode
        self._allow_downloads = allow_downloads
        self._generators: dict[str, Generator] = {}
        self._lock = threading.RLock()

    def generator(self, spec: str | None = None) -> tuple[Generator, str | None]:
        """The generator for `spec` (default: the settings'), loaded once; (generator, warning).

        A generator that cannot be used (model not on disk, server down) falls back to extractive,
        with the reason as the warning, so a question always gets a grounded answer. A malformed spec
        is a usage error (ValueError), not a fallback.
        """
        spec = spec or self.default_spec
        parse_spec(spec)
        with self._lock:
            if spec not in self._generators:
                try:
                    self._generators[spec] = make_generator(spec, self._encode, allow_downloads=self._allow_downloads)
                except GeneratorUnavailable as e:
                    if spec == "extractive":
                        raise
                    extractive, _ = self.generator("extractive")
                    return extractive, str(e)
            return self._generators[spec], None

    def stream(
        self,
        question: str,
        hits: Sequence[Hit] | None,
        generator: str | None = None,
        *,
        query: str | None = None,
        refuse: bool = True,
    ) -> AnswerStream:
        """The answer to `question` from `hits` (None: answer without retrieved context), as a stream.

        `query` is what the hits were retrieved with when it differs from the question (a follow-up
        joined to the previous question): coverage is judged on it. refuse=False answers even from
        passages the judge finds do not cover the question (benchmarks that score every answer and
        apply refusal thresholds afterwards)."""
        gen, warning = self.generator(generator)
        return AnswerStream(question, gen, hits, self.judge if refuse else None, warning, query)
