"""LoRA fine-tuning of a local causal LM on the knowledge base's own text (`python -m rag_core finetune`).

Why: teams ask whether they should fine-tune a chat model on their documents instead of retrieving
from them. PolicyPal answers that on their own documents and questions: this module trains LoRA
adapters (the `peft` package) with the causal-LM loss on the knowledge base's chunks, each read with
its heading context (title > headings, as BM25 reads it), and `rag_core.compare` scores the adapter
against retrieval. No weights can be downloaded here, so the user brings a local base model
(`hf:<dir>`), as `ask --generator hf:` does.

The adapter directory holds peft's adapter files, the tokenizer and `RECORD_NAME`: the base model's
path, the knowledge base generation and the documents (name, version, sha256) it was trained on, the
loss per step, the time and the peak memory. `hf:<adapter dir>` loads base + adapter wherever a
generator is accepted (rag_core.answer.hf).

Fails fast, before any training: a base that is not a local directory, not a causal LM (an encoder
such as the bundled MiniLM), or larger than the memory it would need to train in.

What it leaves out: instruction-style question/answer pairs (the chunks are all a new installation
has; the QA file is kept for scoring), quantised (QLoRA) bases, and multi-GPU training.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_core.embedding.loading import scoped_load
from rag_core.types import DocumentInfo, json_of

RECORD_NAME = "policypal-finetune.json"
ADAPTER_CONFIG = "adapter_config.json"  # peft's: its presence makes a directory an adapter
TRAINING_MEMORY_FACTOR = 1.6  # fp32 weights + LoRA's small optimiser state + activations at batch 4 x 256
MIN_BLOCK_TOKENS = 16

StepFn = Callable[[int, int, float], None]  # (step, total steps, loss of the step)


class FinetuneError(ValueError):
    """The base model or the options cannot be used; the message says what to do."""


@dataclass(frozen=True)
class FinetuneOptions:
    steps: int = 200
    lora_r: int = 8
    batch_size: int = 4
    block_tokens: int = 256  # tokens per training sequence (capped by the model's window)
    learning_rate: float = 2e-4
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "lora_r", "batch_size"):
            if getattr(self, name) < 1:
                raise FinetuneError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(self, name)}")
        if self.block_tokens < MIN_BLOCK_TOKENS:
            raise FinetuneError(f"block_tokens must be >= {MIN_BLOCK_TOKENS}; got {self.block_tokens}")
        if not 0 < self.learning_rate < 1:
            raise FinetuneError(f"the learning rate must be between 0 and 1; got {self.learning_rate}")


@dataclass(frozen=True)
class TrainedDocument:
    """A document as it was when an adapter was trained on it."""

    name: str
    version: int
    sha256: str


@dataclass(frozen=True)
class FinetuneRecord:
    base: str  # the base model's directory
    generation: int  # the knowledge base generation the chunks were read at
    documents: list[TrainedDocument]
    chunks: int
    tokens: int  # training tokens available (the steps may see fewer, or some twice)
    steps: int
    lora_r: int
    batch_size: int
    block_tokens: int
    learning_rate: float
    trainable_parameters: int
    total_parameters: int
    device: str
    seconds: float
    peak_memory_mb: float  # the process's peak RSS; on a GPU, plus the peak the GPU allocated
    loss: list[float] = field(default_factory=list)  # one per step

    def to_json(self) -> dict[str, object]:
        return json_of(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FinetuneRecord:
        docs = [TrainedDocument(**d) for d in data.get("documents", [])]
        return cls(**{**data, "documents": docs})


def model_dir(spec: str) -> Path:
    """The local directory of `hf:<dir>` (or a bare directory); a name to download is refused."""
    path = Path(spec.removeprefix("hf:")).expanduser()
    if not path.is_dir():
        raise FinetuneError(
            f"{spec!r} is not a local model directory. Give hf:/path/to/model (a transformers causal LM "
            "saved with save_pretrained); nothing is downloaded here"
        )
    if not (path / "config.json").exists():
        raise FinetuneError(f"{path} has no config.json: it is not a transformers model directory")
    return path.resolve()


def is_adapter(path: Path) -> bool:
    return (path / ADAPTER_CONFIG).exists()


def read_record(adapter: Path) -> FinetuneRecord | None:
    """The record of an adapter trained here; None for a directory that is not one, or a damaged record."""
    try:
        return FinetuneRecord.from_json(json.loads((adapter / RECORD_NAME).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def check_base(path: Path, available_bytes: int | None = None) -> Any:
    """The base model's config, after checking it is a causal LM that fits in memory to train."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if is_adapter(path):
        raise FinetuneError(f"{path} is a LoRA adapter, not a base model: give the base it was trained on")
    try:
        with scoped_load(True):
            config = AutoConfig.from_pretrained(path, local_files_only=True)
    except Exception as e:
        raise FinetuneError(f"{path}: its config cannot be read ({type(e).__name__}: {e})") from e
    archs: list[str] = list(getattr(config, "architectures", None) or [])
    causal = (
        any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
        if archs
        else config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    )
    if not causal or getattr(config, "is_encoder_decoder", False):
        kind = ", ".join(archs) or config.model_type
        raise FinetuneError(
            f"{path} is not a causal language model ({kind}); LoRA fine-tuning here needs one that generates "
            "text, such as GPT-2, Qwen or Llama saved with save_pretrained"
        )
    need = int(weight_bytes(path) * TRAINING_MEMORY_FACTOR * _fp32_factor(config))
    have = available_memory() if available_bytes is None else available_bytes
    if need > have:
        raise FinetuneError(
            f"{path} needs about {need / 2**30:.1f} GiB to train, and {have / 2**30:.1f} GiB is free"
            + (" on the GPU" if _cuda() else "")
            + ": choose a smaller base model, or run on a machine with more memory"
        )
    return config


def weight_bytes(path: Path) -> int:
    files = [*path.glob("*.safetensors"), *path.glob("*.bin")]
    return sum(f.stat().st_size for f in files)


def _fp32_factor(config: Any) -> int:
    """Weights stored in 16 bits load as 32-bit floats on a CPU, twice their size on disk."""
    dtype = str(getattr(config, "dtype", None) or "float32")
    return 2 if ("16" in dtype and not _cuda()) else 1


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def available_memory() -> int:
    """Bytes free to train in: the GPU's free memory when there is one, else the machine's available RAM."""
    import torch

    if torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def token_blocks(tokenizer: Any, texts: Sequence[str], block: int) -> list[list[int]]:
    """The texts as one token stream (each ended by the end-of-text token), cut into blocks of `block`
    tokens: the usual causal-LM packing, so no step is spent on padding. A short last block is kept
    when it is at least a quarter block long."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for text in texts:
        stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if eos is not None:
            stream.append(int(eos))
    blocks = [stream[i : i + block] for i in range(0, len(stream), block)]
    if blocks and len(blocks[-1]) < max(MIN_BLOCK_TOKENS, block // 4):
        blocks.pop()
    return blocks


def trained_documents(documents: Sequence[DocumentInfo]) -> list[TrainedDocument]:
    return [TrainedDocument(d.name, d.version, d.sha256) for d in documents]


def check_output(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FinetuneError(f"{out} exists and is not an empty directory: choose a new --out")


def train(
    base: Path,
    texts: Sequence[str],
    out: Path,
    options: FinetuneOptions,
    *,
    generation: int,
    documents: Sequence[DocumentInfo],
    on_step: StepFn | None = None,
) -> FinetuneRecord:
    """Train LoRA adapters on `texts` (the chunks with their context) and save them to `out`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_output(out)
    config = check_base(base)
    torch.manual_seed(options.seed)
    rng = random.Random(options.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with scoped_load(True):
        tokenizer: Any = AutoTokenizer.from_pretrained(base, local_files_only=True)
        model: Any = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=torch.float32)
    window = int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None) or 1024)
    block = min(options.block_tokens, window)
    blocks = token_blocks(tokenizer, texts, block)
    if not blocks:
        raise FinetuneError("the knowledge base has too little text to train on: add documents first")
    lora = LoraConfig(
        r=options.lora_r,
        lora_alpha=2 * options.lora_r,
        lora_dropout=0.05,
        task_type="CAUSAL_LM",
        fan_in_fan_out=config.model_type == "gpt2",  # GPT-2 stores its projections transposed (Conv1D)
        target_modules=None if config.model_type in _peft_defaults() else "all-linear",
    )
    model = get_peft_model(model, lora).to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=options.learning_rate)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    order: list[int] = []
    losses: list[float] = []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    model.train()
    for step in range(1, options.steps + 1):
        batch = []
        for _ in range(min(options.batch_size, len(blocks))):
            if not order:
                order = rng.sample(range(len(blocks)), len(blocks))
            batch.append(blocks[order.pop()])
        ids, labels, mask = _padded(batch, pad)
        result = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device))
        loss = result.loss
        value = float(loss.item())
        if not math.isfinite(value):
            raise FinetuneError(f"the loss became {value} at step {step}: lower the learning rate")
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        losses.append(round(value, 5))
        if on_step is not None:
            on_step(step, options.steps, losses[-1])
    seconds = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    with scoped_load(True):  # without transformers' progress bars
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    record = FinetuneRecord(
        base=str(base),
        generation=generation,
        documents=trained_documents(documents),
        chunks=len(texts),
        tokens=sum(len(b) for b in blocks),
        steps=options.steps,
        lora_r=options.lora_r,
        batch_size=options.batch_size,
        block_tokens=block,
        learning_rate=options.learning_rate,
        trainable_parameters=int(trainable),
        total_parameters=int(total),
        device=device,
        seconds=round(seconds, 2),
        peak_memory_mb=round(_peak_memory_mb(device), 1),
        loss=losses,
    )
    (out / RECORD_NAME).write_text(json.dumps(record.to_json(), indent=1))
    return record


def _peft_defaults() -> Any:
    """The model types for which peft knows which layers to adapt (its defaults: the attention
    projections, e.g. GPT-2's c_attn, Llama's q_proj and v_proj); others get every linear layer."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    return TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING


def _padded(batch: list[list[int]], pad: int) -> tuple[Any, Any, Any]:
    """(input ids, labels with padding masked out, attention mask) of blocks of unequal length."""
    import torch

    width = max(len(b) for b in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, b in enumerate(batch):
        ids[i, : len(b)] = torch.tensor(b)
        labels[i, : len(b)] = torch.tensor(b)
        mask[i, : len(b)] = 1
    return ids, labels, mask


def _peak_memory_mb(device: str) -> float:
    import torch

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    try:  # VmHWM: this process's own peak (getrusage can count the parent's size at exec time)
        status = Path("/proc/self/status").read_text().splitlines()
        rss = next(int(x.split()[1]) / 1024 for x in status if x.startswith("VmHWM"))
    except (OSError, StopIteration, ValueError):
        pass
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0
    return float(rss + gpu)


def load_adapter(adapter: Path, *, device: str) -> tuple[Any, Any]:
    """(tokenizer, model) of an adapter directory: its base model (as its record or peft's config names
    it) with the adapter merged in, ready to generate. Raises FinetuneError naming a missing base."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    record = read_record(adapter)
    base_name = record.base if record is not None else PeftConfig.from_pretrained(str(adapter)).base_model_name_or_path
    base = Path(str(base_name))
    if not (base / "config.json").exists():
        raise FinetuneError(
            f"the adapter {adapter} was trained on the base model {base_name}, which is not on this machine: "
            "put that model directory back, or train a new adapter on a base that is here"
        )
    with scoped_load(True):
        tokenizer: Any = AutoTokenizer.from_pretrained(adapter, local_files_only=True)
        model: Any = AutoModelForCausalLM.from_pretrained(base, local_files_only=True)
        merged: Any = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return tokenizer, merged.to(device)
