"""An OpenAI-compatible chat-completions server (`openai:<base url>#<model>`), streamed over SSE."""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence

from rag_core.answer.generators import GeneratorError, GeneratorUnavailable
from rag_core.answer.prompt import chat_messages, render_messages
from rag_core.types import Hit


class OpenAIGenerator:
    """An OpenAI-compatible chat-completions server (Ollama, vLLM, llama.cpp server), streamed.

    The API key comes from RAG_OPENAI_API_KEY (or OPENAI_API_KEY); local servers usually need none.
    """

    def __init__(self, arg: str, *, timeout: float = 60.0, api_key: str | None = None):
        base, _, model = arg.partition("#")
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"openai base url must start with http:// or https://; got {base!r}")
        self.base_url = base.rstrip("/")
        self.model = model
        self.name = f"openai:{self.base_url}#{model}"
        self.timeout = timeout
        self.api_key = (
            api_key if api_key is not None else os.environ.get("RAG_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY")
        )

    def prepare(self, question: str, hits: Sequence[Hit] | None) -> tuple[str, list[Hit]]:
        return render_messages(chat_messages(question, hits)), list(hits or [])

    def stream(self, question: str, hits: Sequence[Hit] | None) -> Iterator[str]:
        body = json.dumps(
            {"model": self.model, "messages": chat_messages(question, hits), "stream": True, "temperature": 0}
        ).encode()
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}/chat/completions"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            detail = e.read(500).decode("utf-8", "replace")
            if e.code in (401, 403):
                raise GeneratorUnavailable(
                    f"{url} refused the request ({e.code}): set RAG_OPENAI_API_KEY to a valid key"
                ) from e
            if e.code == 404:
                raise GeneratorUnavailable(
                    f"{url} answered 404: check the base URL (it usually ends in /v1) and that model "
                    f"{self.model!r} exists on the server ({detail.strip()[:200]})"
                ) from e
            raise GeneratorUnavailable(f"{url} answered HTTP {e.code}: {detail.strip()[:200]}") from e
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, ConnectionRefusedError):
                raise GeneratorUnavailable(
                    f"cannot connect to {self.base_url}: connection refused. Is the server running?"
                ) from e
            if isinstance(reason, TimeoutError | socket.timeout):
                raise GeneratorUnavailable(f"{self.base_url} did not answer within {self.timeout:g} s") from e
            raise GeneratorUnavailable(f"cannot reach {self.base_url}: {reason}") from e
        except TimeoutError as e:
            raise GeneratorUnavailable(f"{self.base_url} did not answer within {self.timeout:g} s") from e
        with response:
            done = False
            try:
                for raw in response:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    try:
                        event = json.loads(data)
                    except json.JSONDecodeError:
                        continue
                    if "error" in event:
                        raise GeneratorError(f"{self.name} reported an error: {event['error']}")
                    for choice in event.get("choices", []):
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            yield piece
                        if choice.get("finish_reason"):
                            done = True
            except (TimeoutError, ConnectionError, OSError) as e:
                raise GeneratorError(f"the connection to {self.base_url} dropped mid-answer: {e}") from e
            if not done:
                raise GeneratorError(f"the connection to {self.base_url} closed before the answer was complete")
