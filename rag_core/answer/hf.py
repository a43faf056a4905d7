"""A local causal language model through transformers (`hf:<model id or local dir>`), or a LoRA adapter
directory from `python -m rag_core finetune` (`hf:<adapter dir>`: its base model with the adapter merged in)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rag_core import lora
from rag_core.answer.generators import GeneratorError, GeneratorUnavailable
from rag_core.answer.prompt import build_prompt, chat_messages
from rag_core.embedding.loading import scoped_load
from rag_core.types import Hit

MIN_ANSWER_TOKENS = 32  # the shortest answer worth asking a model for: one or two sentences


class HFGenerator:
    """A local causal LM through transformers. Loads offline unless downloads are allowed.

    The prompt and the answer are fitted to the model's context window together (`fit`): passages are
    dropped from the lowest rank and the answer budget shrinks, never is text cut blindly.
    """

    def __init__(
        self,
        model_id: str,
        *,
        allow_downloads: bool = False,
        max_new_tokens: int = 200,
        device: str | None = None,
    ):
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1; got {max_new_tokens}")
        self.name = f"hf:{model_id}"
        self.max_new_tokens = max_new_tokens
        self.tokenizer: Any = None
        loaded: Any = None
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            if lora.is_adapter(Path(model_id)):  # LoRA adapters from `finetune`: base + adapter, merged
                self.tokenizer, loaded = lora.load_adapter(Path(model_id), device=self.device)
            else:
                local_only = not allow_downloads
                with scoped_load(local_only):  # offline and without progress bars, for this load only
                    self.tokenizer = AutoTokenizer.from_pretrained(model_id, local_files_only=local_only)
                    loaded = AutoModelForCausalLM.from_pretrained(model_id, local_files_only=local_only)
        except lora.FinetuneError as e:
            raise GeneratorUnavailable(f"{e}; meanwhile the extractive answerer is used") from e
        except Exception as e:
            raise GeneratorUnavailable(
                f"language model {model_id!r} is not available on this machine ({type(e).__name__}). "
                "Give the path of a local model directory (hf:/path/to/model), or download it on a "
                "machine with network access and set RAG_ALLOW_DOWNLOADS=1; meanwhile the extractive "
                "answerer is used"
            ) from e
        self.model: Any = loaded.to(self.device)
        self.model.eval()
        config = self.model.config
        window = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
        self.context_window = int(window or min(self.tokenizer.model_max_length, 4096))
        if self.context_window <= MIN_ANSWER_TOKENS + 64:
            raise GeneratorUnavailable(
                f"{model_id!r} has a context window of {self.context_window} tokens, too small for a prompt "
                f"and an answer of at least {MIN_ANSWER_TOKENS} tokens"
            )

    def _render(self, question: str, hits: Sequence[Hit] | None) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return str(
                self.tokenizer.apply_chat_template(
                    chat_messages(question, hits), tokenize=False, add_generation_prompt=True
                )
            )
        return build_prompt(question, hits)

    def _tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prepare(self, question: str, hits: Sequence[Hit] | None) -> tuple[str, list[Hit]]:
        prompt, kept, _ = self.fit(question, hits)
        return prompt, kept

    def fit(self, question: str, hits: Sequence[Hit] | None) -> tuple[str, list[Hit], int]:
        """(prompt, the passages kept, answer tokens) that fit the context window together.

        A small window (GPT-2 at 256 or 1024 positions) still answers: the lowest-ranked passages are
        dropped down to the best one, then the answer budget shrinks down to MIN_ANSWER_TOKENS, then
        the last passage goes. Only when the instructions and the question alone leave no room for a
        short answer does it fail, saying what took the room.
        """
        kept = list(hits) if hits is not None else None
        prompt = self._render(question, kept)
        used = self._tokens(prompt)
        while kept and len(kept) > 1 and used + self.max_new_tokens > self.context_window:
            kept = kept[:-1]  # drop the lowest-ranked passage
            prompt = self._render(question, kept)
            used = self._tokens(prompt)
        if kept and used + MIN_ANSWER_TOKENS > self.context_window:
            kept = []
            prompt = self._render(question, kept)
            used = self._tokens(prompt)
        room = self.context_window - used
        if room < MIN_ANSWER_TOKENS:
            asked = self._tokens(question)
            raise GeneratorError(
                f"the prompt does not fit {self.name}'s context window ({self.context_window} tokens): the "
                f"instructions take {used - asked} tokens and the question {asked}, which leaves {max(room, 0)} "
                f"for an answer of at least {MIN_ANSWER_TOKENS}. Ask a shorter question or use a model with a "
                "larger window"
            )
        return prompt, list(kept or []), min(self.max_new_tokens, room)

    def stream(self, question: str, hits: Sequence[Hit] | None) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        prompt, _, budget = self.fit(question, hits)
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(
                        **inputs,
                        streamer=streamer,
                        max_new_tokens=budget,
                        do_sample=False,
                        pad_token_id=pad,
                    )
            except BaseException as e:  # surface in the caller's thread, and unblock the streamer
                errors.append(e)
                streamer.end()  # type: ignore[no-untyped-call]  # transformers ships it unannotated

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        yield from streamer
        thread.join()
        if errors:
            raise GeneratorError(f"{self.name} failed while generating: {errors[0]}") from errors[0]
