"""Tiny random encoders for the DPR and mean-pooling families, built in a temp dir once per session.

A WordPiece tokenizer trained on a few dozen sentences and 2-layer 32-d BERT/DPR weights: nothing is
downloaded, and each loads in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rag_core.embedding import Embedder
from tests.conftest import LEAVE_POLICY

SENTENCES = [
    *(s.strip() + "." for page in LEAVE_POLICY for s in page.split(". ") if s.strip()),
    "Employees may take sick leave when they are ill.",
    "Parental leave lasts sixteen weeks for every new parent.",
    "The office opens at eight and closes at six.",
    "Managers approve overtime in advance.",
    "Laptops must be locked when unattended.",
    "Passwords are changed every ninety days.",
    "Training budgets are set once per year.",
    "Bereavement leave is three days when a relative dies.",
    "Public holidays follow the national calendar.",
    "Report security incidents to the help desk at once.",
    "Business travel is booked through the travel portal.",
    "New hires receive a badge on their first day.",
]
DOCUMENT = "\n\n".join(LEAVE_POLICY)
LONG_TEXT = " ".join(SENTENCES) * 40  # thousands of word pieces: far past every model's limit


def _tokenizer(out: Path):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast  # type: ignore[attr-defined]

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(SENTENCES * 3, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    fast.save_pretrained(out)
    return fast


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """question/, context/ (DPR), mean/ (BERT, 512 positions), short/ (BERT, 40 positions)."""
    import torch
    from transformers import BertConfig, BertModel, DPRConfig, DPRContextEncoder, DPRQuestionEncoder

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny-encoders")
    tiny: dict[str, Any] = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
    tiny["intermediate_size"] = 64
    for name, cls in (("question", DPRQuestionEncoder), ("context", DPRContextEncoder)):
        vocab = len(_tokenizer(root / name))
        cls(DPRConfig(vocab_size=vocab, **tiny)).save_pretrained(root / name)
    for name, positions in (("mean", 512), ("short", 40)):
        vocab = len(_tokenizer(root / name))
        BertModel(BertConfig(vocab_size=vocab, max_position_embeddings=positions, **tiny)).save_pretrained(root / name)
    return root


@pytest.fixture(scope="session")
def dpr_spec(models_dir: Path) -> str:
    return f"dpr:{models_dir / 'question'},{models_dir / 'context'}"


@pytest.fixture(scope="session")
def mean_spec(models_dir: Path) -> str:
    return f"mean:{models_dir / 'mean'}"


@pytest.fixture(scope="session")
def dpr(dpr_spec: str) -> Embedder:
    return Embedder(dpr_spec, precision="fp32")


@pytest.fixture(scope="session")
def mean(mean_spec: str) -> Embedder:
    return Embedder(mean_spec, precision="fp32")
