"""A chat conversation and its export to Markdown and JSON, citations included.

The chat page keeps a list of `ChatMessage` per browser session; the export lets an employee keep
the answer together with the passages it rests on (document, page, score).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rag_core.display import escape_markdown, evidence_order
from rag_core.types import Answer, Citation, Hit, Role, json_of


@dataclass
class ChatMessage:
    role: Role
    content: str
    grounded: bool = True
    generator: str = ""
    citations: list[Citation] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    prompt: str = ""
    warning: str | None = None
    without_context: str | None = None  # the no-retrieval answer, when the user compared both
    question_id: int | None = None  # its entry in the question log (feedback goes there); None if not logged

    @classmethod
    def from_answer(cls, answer: Answer) -> ChatMessage:
        return cls(
            role="assistant",
            content=answer.text,
            grounded=answer.grounded,
            generator=answer.generator,
            citations=list(answer.citations),
            hits=list(answer.hits),
            prompt=answer.prompt,
            warning=answer.warning,
        )

    def to_json(self) -> dict[str, object]:
        """The message with its citations and, for each passage, how dense and BM25 ranked it."""
        return json_of(self) | {"hits": [h.evidence_json() for h in self.hits]}


def export_json(messages: Sequence[ChatMessage]) -> str:
    return json.dumps(
        {"exported_at": datetime.now(UTC).isoformat(timespec="seconds"), "messages": [m.to_json() for m in messages]},
        ensure_ascii=False,
        indent=2,
    )


def export_markdown(messages: Sequence[ChatMessage]) -> str:
    """Readable transcript; document text is escaped so the file renders as the words they are."""
    lines = ["# PolicyPal conversation", ""]
    for m in messages:
        who = "You" if m.role == "user" else "PolicyPal"
        lines += [f"**{who}:** {escape_markdown(m.content)}", ""]
        if m.without_context is not None:
            lines += [f"*Without retrieval:* {escape_markdown(m.without_context)}", ""]
        for i, h, _ in evidence_order(m.hits, [c.number for c in m.citations]):
            lines.append(
                f"- [{i}] {escape_markdown(h.document)}, {escape_markdown(h.page_cited)} (score {h.score:.3f})"
            )
        if m.hits:
            lines.append("")
    return "\n".join(lines)
