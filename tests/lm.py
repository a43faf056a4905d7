"""Tiny random causal LMs for the code paths that need a model (none can be downloaded in tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rag_core.evaluation import SAMPLE_QA

SAMPLE_TEXT = (SAMPLE_QA.parent / "sample_policy.md").read_text()  # what the tiny models' tokenizers learn


def tiny_gpt2(out: Path, corpus: Sequence[str], positions: int = 1024, vocab: int = 400) -> Path:
    """A 2-layer GPT-2 at random weights with a byte-level BPE tokenizer trained on `corpus`, saved to `out`."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(corpus), vocab_size=vocab, min_frequency=1, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.save_pretrained(out)
    eos = tok.eos_token_id
    config = GPT2Config(
        vocab_size=len(tok), n_positions=positions, n_embd=32, n_layer=2, n_head=2, bos_token_id=eos, eos_token_id=eos
    )
    GPT2LMHeadModel(config).save_pretrained(out)
    return out
