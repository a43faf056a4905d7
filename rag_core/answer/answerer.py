"""The Answerer: a question's hits -> a streamed, cited Answer, or a plain "not found".

It owns the generators (built once per spec and kept), the fallback to the extractive answerer when a
model or server cannot be used, and the relevance threshold: when the best passage scores below
`min_score` the answer says the documents do not cover it, and no language model is asked to
improvise (users complain most that answers invent things).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence

from rag_core.answer.extractive import ExtractiveGenerator
from rag_core.answer.generators import Encode, Generator, GeneratorUnavailable, parse_spec
from rag_core.answer.hf import HFGenerator
from rag_core.answer.openai import OpenAIGenerator
from rag_core.answer.prompt import NOT_FOUND
from rag_core.types import Answer, Citation, Hit

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
        min_score: float,
        warning: str | None = None,
    ):
        self.question = question
        self.generator = generator
        self.hits = hits
        self.min_score = min_score
        self.warning = warning
        self.answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        question, gen, hits = self.question, self.generator, self.hits
        if hits is not None and (not hits or max(h.score for h in hits) < self.min_score):
            # Nothing relevant enough: say so, and never let a model improvise.
            prompt, _ = gen.prepare(question, hits)
            self.answer = Answer(question, NOT_FOUND, gen.name, False, [], list(hits), prompt, self.warning)
            yield NOT_FOUND
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
            )

    def result(self) -> Answer:
        """Drain the stream (if not done yet) and return the Answer."""
        if self.answer is None:
            for _ in self:
                pass
        assert self.answer is not None
        return self.answer


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

    `encode` embeds the extractive answerer's candidate sentences; it is only called when one answers.
    """

    def __init__(self, default_spec: str, encode: Encode, *, min_score: float, allow_downloads: bool = False):
        parse_spec(default_spec)
        self.default_spec = default_spec
        self.min_score = min_score
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

    def stream(self, question: str, hits: Sequence[Hit] | None, generator: str | None = None) -> AnswerStream:
        """The answer to `question` from `hits` (None: answer without retrieved context), as a stream."""
        gen, warning = self.generator(generator)
        return AnswerStream(question, gen, hits, self.min_score, warning)
