"""Answers from retrieved passages: extractive by default, a local transformers LM or an
OpenAI-compatible server when the user has one. Every answer is grounded or says it found nothing.

    prompt       the instructions and delimited passages a generator is given; follow-up questions
    generators   the `Generator` interface, its spec strings and errors
    extractive   the default: quotes the best sentences with [n] citations, no weights
    hf, openai   language-model backends
    cache        `EncodeCache`: sentence embeddings computed once for the judge and the answerer
    coverage     `CoverageJudge`: do the passages cover the question? (the refusal decision)
    answerer     `Answerer`: generator cache and fallback, the refusal, `AnswerStream`
"""

from rag_core.answer.answerer import Answerer, AnswerStream, cited, make_generator, refusal_text
from rag_core.answer.coverage import CoverageJudge, CoverageModel
from rag_core.answer.generators import Generator, GeneratorError, GeneratorUnavailable, parse_spec
from rag_core.answer.prompt import (
    EXTRACTIVE_NO_CONTEXT,
    NO_CONTEXT_INSTRUCTIONS,
    NOT_FOUND,
    SYSTEM_INSTRUCTIONS,
    build_prompt,
    chat_messages,
    format_passages,
    render_messages,
    retrieval_query,
    user_message,
)

__all__ = [
    "EXTRACTIVE_NO_CONTEXT",
    "NOT_FOUND",
    "NO_CONTEXT_INSTRUCTIONS",
    "SYSTEM_INSTRUCTIONS",
    "AnswerStream",
    "Answerer",
    "CoverageJudge",
    "CoverageModel",
    "Generator",
    "GeneratorError",
    "GeneratorUnavailable",
    "build_prompt",
    "chat_messages",
    "cited",
    "format_passages",
    "make_generator",
    "parse_spec",
    "refusal_text",
    "render_messages",
    "retrieval_query",
    "user_message",
]
