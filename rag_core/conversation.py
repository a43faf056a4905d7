"""A chat conversation and its export to Markdown and JSON, citations included.

The chat page keeps a list of `ChatMessage` per browser session; the export lets an employee keep
the answer together with the passages it rests on (document, page, score).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from rag_core.display import escape_markdown
from rag_core.generation import Answer


@dataclass
class ChatMessage:
    role: str  # "user" | "assistant"
    content: str
    grounded: bool = True
    generator: str = ""
    citations: list[dict[str, object]] = field(default_factory=list)
    hits: list[dict[str, object]] = field(default_factory=list)
    prompt: str = ""
    warning: str | None = None
    without_context: str | None = None  # the no-retrieval answer, when the user compared both

    @classmethod
    def from_answer(cls, answer: Answer) -> ChatMessage:
        return cls(
            role="assistant",
            content=answer.text,
            grounded=answer.grounded,
            generator=answer.generator,
            citations=[c.to_json() for c in answer.citations],
            hits=[h.evidence_json() for h in answer.hits],
            prompt=answer.prompt,
            warning=answer.warning,
        )


def export_json(messages: Sequence[ChatMessage]) -> str:
    return json.dumps(
        {"exported_at": datetime.now(UTC).isoformat(timespec="seconds"), "messages": [asdict(m) for m in messages]},
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
        for i, h in enumerate(m.hits, 1):
            lines.append(
                f"- [{i}] {escape_markdown(str(h['document']))}, page {h['page']} (score {float(h['score']):.3f})"  # type: ignore[arg-type]
            )
        if m.hits:
            lines.append("")
    return "\n".join(lines)
