"""Retriever fine-tuning: a knowledge base's own QA file -> a sentence-transformers embedder tuned to it.

Why: the bundled MiniLM was trained on web pairs, not on collective agreements; a company that has
written questions with their gold pages (the QA files `eval` reads) can teach the embedder its own
vocabulary. `python -m rag_core tune QA.jsonl --out DIR` does it in minutes on a CPU, and the result is
an ordinary sentence-transformers directory that `ingest --embedder DIR` accepts for a new knowledge
base. Whether it helps is measured, not assumed: benchmarks/eval_tune.py cross-validates it on the dev
set (figures in benchmarks/RESULTS.md: it won on held-out dev questions, not on other documents'
questions). The bundled model stays the default embedder, since a tuned one belongs to the knowledge
base whose questions trained it.

Two steps, both over the knowledge base the questions were written for:

1. `mine_pairs`: each answerable question whose document is stored gets its gold passage (a chunk on
   the gold document and one of its gold pages: the one containing an expected answer phrase when there
   is one, else the one the current embedder ranks highest) and its hard negatives (the chunks the
   current embedder ranks highest elsewhere; on the gold document itself a chunk that contains an
   answer phrase is skipped, since a summary table on another page is no wrong answer).
2. `train`: the sentence-transformers trainer with MultipleNegativesRankingLoss (each question against
   its passage, the other passages of the batch and the hard negatives), batches without duplicate
   texts (two questions with one gold passage would otherwise be each other's false negatives), on the
   CPU, with a fixed seed; then the model directory and a JSON record of the run (`RECORD_NAME`).

What it leaves out: DPR and mean-pooled embedders (the trainer serves sentence-transformers models),
a validation split inside the run (the benchmark's folds do that), and re-embedding: the tuned model
gets a new knowledge base through `ingest --embedder`, since one KB never mixes two models' vectors.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag_core.embedding import Embedder, parse_spec
from rag_core.evaluation import QAItem
from rag_core.logs import quiet
from rag_core.store import KnowledgeStore
from rag_core.types import ChunkRow, FloatArray, json_of

if TYPE_CHECKING:
    from rag_core.engine import Engine

RECORD_NAME = "policypal-tune.json"  # written into the model directory next to the weights
DEFAULT_EPOCHS = 3
DEFAULT_BATCH_SIZE = 16
DEFAULT_HARD_NEGATIVES = 1
DEFAULT_LEARNING_RATE = 2e-5
MAX_HARD_NEGATIVES = 16
SEED = 42  # the same pairs and options give the same model

# (step, total steps, loss of the step): progress for a bar on stderr
StepFn = Callable[[int, int, float], None]


class TuneError(ValueError):
    """Input that cannot be tuned on: the message says what is wrong and what to do."""


@dataclass(frozen=True)
class TuneOptions:
    """How long and how hard to train; validated at construction so a bad number fails before any model loads."""

    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    hard_negatives: int = DEFAULT_HARD_NEGATIVES
    learning_rate: float = DEFAULT_LEARNING_RATE

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise TuneError(f"--epochs must be >= 1; got {self.epochs}")
        if self.batch_size < 2:
            raise TuneError(
                f"--batch-size must be >= 2 (the other pairs of a batch are the negatives); got {self.batch_size}"
            )
        if not 0 <= self.hard_negatives <= MAX_HARD_NEGATIVES:
            raise TuneError(f"--hard-negatives must be between 0 and {MAX_HARD_NEGATIVES}; got {self.hard_negatives}")
        if not (math.isfinite(self.learning_rate) and 0 < self.learning_rate < 1):
            raise TuneError(f"--learning-rate must be a number between 0 and 1 (e.g. 2e-5); got {self.learning_rate}")


@dataclass(frozen=True)
class TrainingPair:
    """One question with its gold passage and hard negatives, as the embedder reads them (context + text)."""

    id: str
    question: str
    positive: str
    negatives: tuple[str, ...]
    chunk_id: int  # the gold passage's chunk
    has_answer: bool  # the gold passage contains one of the expected answer phrases


@dataclass(frozen=True)
class Skipped:
    """An answerable question that gave no pair, and why."""

    id: str
    reason: str


@dataclass(frozen=True)
class Mined:
    """What `mine_pairs` found in one generation of a knowledge base."""

    base_embedder: str
    generation: int
    chunks: int
    questions: int  # answerable questions in the QA file
    pairs: list[TrainingPair]
    skipped: list[Skipped]

    @property
    def page_misses(self) -> list[Skipped]:
        """Questions whose document is stored but whose pages hold no passage: likely a wrong page number."""
        return [s for s in self.skipped if s.reason.startswith("no passage")]


@dataclass(frozen=True)
class StepLoss:
    step: int
    epoch: float
    loss: float


@dataclass(frozen=True)
class TuneRecord:
    """The JSON record of a run (`--json` prints it; the model directory keeps it as `RECORD_NAME`)."""

    output: str
    base_embedder: str
    knowledge_base_generation: int
    knowledge_base_chunks: int
    questions: int
    pairs: int
    pairs_with_answer_phrase: int
    skipped: list[Skipped]
    epochs: int
    batch_size: int
    hard_negatives: int  # per pair, as trained (fewer than asked when the KB has few other passages)
    learning_rate: float
    loss_function: str
    steps: int
    loss: list[StepLoss]  # every step's
    epoch_loss: list[float]  # mean loss of each epoch's steps
    seconds: float
    seed: int = SEED

    def to_json(self) -> dict[str, object]:
        return json_of(self)


def _normal(text: str) -> str:
    """Lower case, runs of whitespace as one space: how answer phrases are matched in passages.

    >>> _normal("Five  (5)\\nworking DAYS")
    'five (5) working days'
    """
    return " ".join(text.split()).lower()


def _contains_any(text: str, phrases: Sequence[str]) -> bool:
    norm = _normal(text)
    return any(p and _normal(p) in norm for p in phrases)


def _check_usable(items: Sequence[QAItem], stored: set[str]) -> list[QAItem]:
    """The answerable items whose document is stored; raises, naming the documents expected, when none is."""
    answerable = [q for q in items if q.answerable]
    if not answerable:
        raise TuneError(
            "the QA file has no answerable question: each needs a 'document' and its 'pages' "
            "(questions with document null only test refusals)"
        )
    usable = [q for q in answerable if q.document in stored]
    if not usable:
        expected = sorted({q.document or "" for q in answerable})
        raise TuneError(
            f"none of the QA file's {len(answerable)} answerable questions is about a document in this knowledge "
            f"base; they expect {_names(expected)}; it holds {_names(sorted(stored))}. Ingest those documents "
            "first (or give --data-dir of the knowledge base they are in)"
        )
    return usable


def _names(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "") if names else "nothing"


def mine_pairs(
    store: KnowledgeStore, embedder: Embedder, items: Sequence[QAItem], hard_negatives: int = DEFAULT_HARD_NEGATIVES
) -> Mined:
    """Gold passages and hard negatives for the answerable `items`, ranked by `embedder` (the KB's own).

    Every stored chunk is scored against every question (exact cosine on the stored unit vectors), so a
    gold passage outside any top-k still gets its rank. Raises `TuneError` when the KB is empty or no
    question is about a stored document.
    """
    generation, ids, texts = store.chunk_texts()
    if not ids:
        raise TuneError("the knowledge base is empty: ingest the documents the QA file is about first")
    rows = store.chunks_by_ids(ids)
    keep = [i for i, cid in enumerate(ids) if cid in rows]  # a delete may land between the two reads
    ids, texts = [ids[i] for i in keep], [texts[i] for i in keep]
    vector_ids, unit = store.vectors(ids)
    position = {int(cid): j for j, cid in enumerate(vector_ids.tolist())}
    stored = {r.document for r in rows.values()}
    usable = _check_usable(items, stored)
    skipped = [
        Skipped(q.id, f"document {q.document!r} is not in the knowledge base")
        for q in items
        if q.answerable and q.document not in stored
    ]
    by_place: dict[tuple[str, int], list[int]] = {}
    for i, cid in enumerate(ids):
        by_place.setdefault((rows[cid].document, rows[cid].page), []).append(i)
    queries = embedder.encode_query([q.question for q in usable])
    pairs: list[TrainingPair] = []
    for start in range(0, len(usable), 64):  # 64 questions x all chunks at a time bounds the memory
        block = usable[start : start + 64]
        scores = _scores(queries[start : start + 64], unit, [position.get(cid, -1) for cid in ids])
        for q, row_scores in zip(block, scores, strict=True):
            gold = [i for p in q.pages for i in by_place.get((q.document or "", p), [])]
            if not gold:
                pages = ", ".join(str(p) for p in q.pages)
                reason = f"no passage of {q.document!r} on page(s) {pages}: check the page numbers"
                skipped.append(Skipped(q.id, reason))
                continue
            pairs.append(_pair(q, gold, row_scores, ids, texts, rows, hard_negatives))
    order = {q.id: n for n, q in enumerate(items)}
    skipped.sort(key=lambda s: order.get(s.id, 0))
    return Mined(embedder.name, generation, len(ids), sum(q.answerable for q in items), pairs, skipped)


def _scores(queries: FloatArray, unit: FloatArray, positions: list[int]) -> FloatArray:
    """Cosine of each query to each chunk, in chunk order; a chunk without a vector scores -inf."""
    pos = np.array(positions, dtype=np.int64)
    out = np.full((len(queries), len(positions)), -np.inf, dtype=np.float32)
    found = pos >= 0
    out[:, found] = queries @ unit[pos[found]].T
    return out


def _pair(
    q: QAItem,
    gold: list[int],
    scores: FloatArray,
    ids: list[int],
    texts: list[str],
    rows: dict[int, ChunkRow],
    hard_negatives: int,
) -> TrainingPair:
    with_answer = [i for i in gold if _contains_any(rows[ids[i]].text, q.answer_contains)]
    best = max(with_answer or gold, key=lambda i: float(scores[i]))
    gold_set = set(gold)
    negatives: list[str] = []
    for i in np.argsort(-scores, kind="stable").tolist():
        if len(negatives) == hard_negatives:
            break
        if i in gold_set or texts[i] == texts[best] or texts[i] in negatives:
            continue
        row = rows[ids[i]]
        if row.document == q.document and _contains_any(row.text, q.answer_contains):
            continue  # the same fact restated on another page of the gold document: not a negative
        negatives.append(texts[i])
    return TrainingPair(q.id, q.question, texts[best], tuple(negatives), ids[best], bool(with_answer))


def check_output(out: Path) -> None:
    """The model goes into a new or empty directory: tuning never overwrites a model (or anything else)."""
    if out.exists() and not out.is_dir():
        raise TuneError(f"--out {out} is a file; give a new or empty directory for the tuned model")
    if out.is_dir() and any(out.iterdir()):
        raise TuneError(f"--out {out} is not empty; give a new or empty directory for the tuned model")


def train(
    mined: Mined,
    out: Path,
    options: TuneOptions,
    *,
    allow_downloads: bool = False,
    on_step: StepFn | None = None,
) -> TuneRecord:
    """Fine-tune a fresh copy of `mined.base_embedder` on the mined pairs and save it to `out`.

    The trainer's own printing (a dict per logged step on stdout) and its checkpoints are left out:
    stdout belongs to `--json`, and checkpoints would go to a temporary directory that is deleted.
    """
    check_output(out)
    if not mined.pairs:
        raise TuneError("no question-passage pair to train on (see the skipped questions)")
    if parse_spec(mined.base_embedder).family != "sentence-transformers":
        raise TuneError(
            f"this knowledge base's embedder {mined.base_embedder!r} is not a sentence-transformers model; "
            "tune fine-tunes sentence-transformers embedders (the default all-MiniLM-L6-v2, or a model directory)"
        )
    from rag_core.embedding.loading import load_sentence_transformer, scoped_load

    began = time.monotonic()
    model = load_sentence_transformer(mined.base_embedder, "cpu", allow_downloads)
    negatives = min(options.hard_negatives, *(len(p.negatives) for p in mined.pairs))
    columns: dict[str, list[str]] = {
        "anchor": [p.question for p in mined.pairs],
        "positive": [p.positive for p in mined.pairs],
    }
    for n in range(negatives):
        columns[f"negative_{n + 1}"] = [p.negatives[n] for p in mined.pairs]
    steps_per_epoch = math.ceil(len(mined.pairs) / options.batch_size)
    total = steps_per_epoch * options.epochs
    losses: list[StepLoss] = []
    with (
        scoped_load(local_only=not allow_downloads),  # the model card may look the base model up on the Hub
        quiet("transformers"),
        quiet("sentence_transformers"),
        quiet("accelerate"),
        tempfile.TemporaryDirectory(prefix="policypal-tune-") as scratch,
    ):
        trainer = _trainer(model, columns, options, scratch, total, losses, on_step)
        trainer.train()
        out.mkdir(parents=True, exist_ok=True)
        model.save(str(out), create_model_card=False)  # the base model's card would name the base model
    epoch_loss = [
        float(np.mean([s.loss for s in losses if (s.step - 1) // steps_per_epoch == e] or [math.nan]))
        for e in range(options.epochs)
    ]
    record = TuneRecord(
        output=str(out),
        base_embedder=mined.base_embedder,
        knowledge_base_generation=mined.generation,
        knowledge_base_chunks=mined.chunks,
        questions=mined.questions,
        pairs=len(mined.pairs),
        pairs_with_answer_phrase=sum(p.has_answer for p in mined.pairs),
        skipped=mined.skipped,
        epochs=options.epochs,
        batch_size=options.batch_size,
        hard_negatives=negatives,
        learning_rate=options.learning_rate,
        loss_function="MultipleNegativesRankingLoss",
        steps=len(losses),
        loss=losses,
        epoch_loss=[round(x, 6) for x in epoch_loss],
        seconds=round(time.monotonic() - began, 1),
    )
    (out / "README.md").write_text(_readme(record), encoding="utf-8")
    (out / RECORD_NAME).write_text(json.dumps(record.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return record


def _readme(record: TuneRecord) -> str:
    return (
        f"# {record.base_embedder}, fine-tuned by PolicyPal\n\n"
        f"A sentence-transformers model: {record.base_embedder} trained with {record.loss_function} on "
        f"{record.pairs} question-passage pairs of one knowledge base ({record.hard_negatives} hard negative(s) "
        f"each, {record.epochs} epoch(s)). The run's record is {RECORD_NAME}.\n\n"
        "Use it for a new knowledge base: `python -m rag_core ingest FILE... --embedder THIS_DIR --data-dir NEW_DIR`.\n"
    )


def _trainer(
    model: Any,
    columns: dict[str, list[str]],
    options: TuneOptions,
    scratch: str,
    total: int,
    losses: list[StepLoss],
    on_step: StepFn | None,
) -> Any:
    """The sentence-transformers trainer, its printing callbacks swapped for one that records the loss."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import PrinterCallback, ProgressCallback, TrainerCallback

    class _Trainer(SentenceTransformerTrainer):
        def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
            """None: the model card's callback copies training examples (the KB's text) into README.md."""

    class Record(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                losses.append(StepLoss(int(state.global_step), round(float(state.epoch or 0), 4), float(logs["loss"])))
                if on_step is not None:
                    on_step(int(state.global_step), total, float(logs["loss"]))

    args = SentenceTransformerTrainingArguments(
        output_dir=scratch,
        num_train_epochs=options.epochs,
        per_device_train_batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        warmup_steps=0.1,  # a fraction of the steps
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=SEED,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
    )
    trainer = _Trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(columns),
        loss=MultipleNegativesRankingLoss(model),
        callbacks=[Record()],
    )
    for noisy in (PrinterCallback, ProgressCallback):  # a dict per step on stdout; a bar of their own
        trainer.remove_callback(noisy)
    return trainer


def fine_tune(
    engine: Engine,
    items: Sequence[QAItem],
    out: Path,
    options: TuneOptions | None = None,
    *,
    on_step: StepFn | None = None,
) -> TuneRecord:
    """`mine_pairs` over the engine's knowledge base, then `train`: the whole of `tune` as one call."""
    options = options or TuneOptions()
    check_output(out)
    mined = mine_pairs(engine.store, engine.embedder, items, options.hard_negatives)
    return train(mined, out, options, allow_downloads=engine.settings.allow_downloads, on_step=on_step)
