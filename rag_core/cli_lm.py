"""The command line's language-model commands: `finetune` (LoRA adapters on the knowledge base's text,
rag_core.lora) and `compare` (fine-tuning vs retrieval on a QA file, rag_core.compare).

Kept apart from `rag_core.__main__` so that the contract's commands stay readable there; errors are
ValueErrors, which `main` prints and exits 2 on, like every usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from rag_core.config import Settings
from rag_core.display import snippet, text_table

if TYPE_CHECKING:
    from rag_core.engine import Engine

EMPTY = "The knowledge base is empty: add documents first with `python -m rag_core ingest FILE...`."


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    ft = sub.add_parser(
        "finetune", parents=[common], help="train LoRA adapters of a local causal LM on the knowledge base's text"
    )
    ft.add_argument("--base", required=True, metavar="hf:DIR", help="a local causal LM directory")
    ft.add_argument("--out", type=str, required=True, metavar="DIR", help="new or empty directory for the adapter")
    ft.add_argument("--steps", type=int, default=None, help="training steps (default 200)")
    ft.add_argument("--lora-r", type=int, default=None, help="LoRA rank (default 8)")
    ft.add_argument("--batch-size", type=int, default=None, help="sequences per step (default 4)")
    ft.add_argument("--learning-rate", type=float, default=None, help="AdamW learning rate (default 2e-4)")
    co = sub.add_parser(
        "compare", parents=[common], help="score a base model, a fine-tuned one, RAG and extractive on a QA file"
    )
    co.add_argument("qa", metavar="QA.jsonl")
    co.add_argument("--generator", required=True, metavar="hf:DIR", help="the base model (hf:<local dir>)")
    co.add_argument("--finetuned", default=None, metavar="hf:DIR", help="its LoRA adapter from `finetune`")
    co.add_argument("--k", type=int, default=None, help="passages retrieved per question (default 5)")


def _engine(settings: Settings) -> Engine:
    from rag_core.engine import Engine

    engine = Engine(settings)
    if engine.is_empty():
        raise ValueError(EMPTY)
    return engine


def cmd_finetune(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from rag_core.lora import FinetuneOptions, check_base, check_output, model_dir, train

    given = {k: getattr(args, k) for k in ("steps", "lora_r", "batch_size", "learning_rate")}
    options = FinetuneOptions(**{k: v for k, v in given.items() if v is not None})
    base, out = model_dir(args.base), Path(args.out)
    check_output(out)
    check_base(base)  # before the knowledge base and the embedder load: a bad base fails in a second
    engine = _engine(settings)
    generation, _, texts = engine.store.chunk_texts()
    with tqdm(total=options.steps, unit="step", file=sys.stderr, disable=None, desc="finetune") as bar:

        def on_step(step: int, total: int, loss: float) -> None:
            bar.update(step - bar.n)
            bar.set_postfix_str(f"loss {loss:.3f}", refresh=True)

        record = train(base, texts, out, options, generation=generation, documents=engine.documents(), on_step=on_step)
    if args.json:
        print(json.dumps(record.to_json(), ensure_ascii=False))
        return 0
    first, last = record.loss[0], record.loss[-1]
    print(
        f"trained LoRA r={record.lora_r} on {record.chunks} passages ({record.tokens:,} tokens) of generation "
        f"{record.generation}: {record.steps} steps in {record.seconds:.1f} s on {record.device}, loss {first:.3f} "
        f"-> {last:.3f}, peak memory {record.peak_memory_mb:,.0f} MB, {record.trainable_parameters:,} of "
        f"{record.total_parameters:,} parameters trained"
    )
    print(f"saved to {out}; answer with it: --generator hf:{out}, or compare it: compare QA.jsonl --finetuned hf:{out}")
    return 0


def cmd_compare(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from rag_core.compare import answer_rows, compare, summary_rows
    from rag_core.evaluation import load_qa

    if args.k is not None and args.k < 1:
        raise ValueError(f"--k must be >= 1; got {args.k}")
    try:
        items = load_qa(args.qa)
    except OSError as e:
        raise ValueError(str(e)) from e
    engine = _engine(settings)
    with tqdm(total=None, unit="answer", file=sys.stderr, disable=None, desc="compare") as bar:

        def on_answer(done: int, total: int, arm: str) -> None:
            bar.total = total
            bar.update(done - bar.n)
            bar.set_postfix_str(arm, refresh=False)

        report = compare(engine, items, args.generator, args.finetuned, k=args.k, on_answer=on_answer)
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
        return 0
    rows = summary_rows(report)
    cells = [
        ["n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)) for v in r.values()] for r in rows
    ]
    print(text_table(list(rows[0]), cells))
    if report.drift is not None:
        print(f"\n{report.drift.note()}")
    print("\nanswers, question by question (✓: has the expected fact):")
    for row in answer_rows(report):
        print(f"\n{row['id']}: {row['question']}  [expected: {row['expected']}]")
        for arm in (a.arm for a in report.arms):
            print(f"  {arm}: {snippet(str(row[arm]), 140)}")
    return 0


COMMANDS = {"finetune": cmd_finetune, "compare": cmd_compare}
