"""The generator interface, its errors and its spec strings (`make_generator` in answerer builds one).

Backends (spec strings, as in DESIGN.md):
    extractive                   quotes the sentences of the retrieved passages that best answer the
                                 question (rag_core.answer.extractive); no weights
    hf:<model id or local dir>   a local transformers causal LM (rag_core.answer.hf)
    openai:<base url>#<model>    an OpenAI-compatible /chat/completions server (rag_core.answer.openai)

A new backend implements `Generator` (prepare the prompt within its budget, stream the text) and gets
a spec prefix here and in `rag_core.answer.answerer.make_generator`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Literal, Protocol

from rag_core.types import FloatArray, Hit

GeneratorKind = Literal["extractive", "hf", "openai"]
Encode = Callable[[list[str]], FloatArray]  # texts -> unit vectors (the extractive answerer's sentences)


class GeneratorError(RuntimeError):
    """A generator failed while answering (e.g. the server dropped the connection)."""


class GeneratorUnavailable(GeneratorError):
    """The model or server cannot be used at all; the message names it and what to do."""


class Generator(Protocol):
    """A backend: builds its prompt within its budget, then streams the answer text."""

    name: str

    def prepare(self, question: str, hits: Sequence[Hit] | None) -> tuple[str, list[Hit]]:
        """(prompt as shown to the user, the passages that fit the model's budget)."""
        ...

    def stream(self, question: str, hits: Sequence[Hit] | None) -> Iterator[str]:
        """Answer text in pieces. `hits` is what `prepare` kept; None = no-context mode."""
        ...


def parse_spec(spec: str) -> tuple[GeneratorKind, str]:
    """('extractive'|'hf'|'openai', argument). Raises ValueError listing the valid forms.

    >>> parse_spec("hf:gpt2"), parse_spec("openai:http://localhost:11434/v1#llama3")
    (('hf', 'gpt2'), ('openai', 'http://localhost:11434/v1#llama3'))
    """
    spec = spec.strip()
    if spec == "extractive":
        return "extractive", ""
    kind, _, arg = spec.partition(":")
    if kind == "hf" and arg:
        return "hf", arg
    if kind == "openai" and "#" in arg and arg.split("#", 1)[0] and arg.split("#", 1)[1]:
        return "openai", arg
    raise ValueError(
        f"unknown generator {spec!r}; valid: 'extractive', 'hf:<model id or local dir>', 'openai:<base url>#<model>'"
    )
